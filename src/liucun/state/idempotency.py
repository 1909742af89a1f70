"""Requests made idempotent by a client's key: the first answer is kept with a fingerprint of
the request, a repeat gets that answer, and a key reused for another request is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa

REUSED_EN = "the idempotency key {key!r} was used for a different request; use a new key"
REUSED_ZH = "幂等键 {key!r} 已用于另一个请求,请换一个新的键"


def fingerprint(kind: str, user_id: str, request: dict[str, Any]) -> str:
    """What identifies a request apart from its key (to refuse a key reused for another)."""
    body = orjson.dumps([kind, user_id, request], option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(body).hexdigest()


def prior_result(
    conn: sa.Connection,
    key_column: sa.Column[Any],
    where: list[Any],
    key: str,
    print_: str,
    refuse: Callable[[str, str], Exception],
) -> dict[str, Any] | None:
    """The kept answer of the request under `key` (rows of `key_column`'s table matching
    `where`), None if there is none; `refuse(en, zh)` is raised when the key was used for a
    request of another fingerprint."""
    table = key_column.table
    row = conn.execute(
        sa.select(table.c.fingerprint, table.c.result).where(key_column == key, *where)
    ).first()
    if row is None:
        return None
    if row.fingerprint != print_:
        raise refuse(REUSED_EN.format(key=key), REUSED_ZH.format(key=key))
    result: dict[str, Any] = orjson.loads(row.result)
    return result
