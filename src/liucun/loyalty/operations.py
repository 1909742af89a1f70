"""Idempotent loyalty writes: each carries a key (an event id, an order id or the client's own);
the same key again changes nothing and answers with the first result.

A refused request is not remembered: the same key may succeed later (after the user earned the
points it lacked, say).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.members import Member, lock_member
from liucun.loyalty.programme import Programme
from liucun.state.db import write_transaction
from liucun.state.idempotency import fingerprint, prior_result
from liucun.state.tables import loyalty_operations

KEY_MAX = 200
Work = Callable[[sa.Connection, Member], dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    replayed: bool  # the key was seen before: nothing changed this time


def check_key(key: str) -> str:
    if not key or len(key) > KEY_MAX:
        raise LoyaltyError(
            "bad_idempotency_key",
            f"idempotency keys are 1–{KEY_MAX} characters",
            f"幂等键须为 1–{KEY_MAX} 个字符",
            status=422,
        )
    return key


def _prior(conn: sa.Connection, app_id: str, key: str, print_: str) -> dict[str, Any] | None:
    o = loyalty_operations.c
    return prior_result(
        conn,
        o.idempotency_key,
        [o.app_id == app_id],
        key,
        print_,
        lambda en, zh: LoyaltyError("idempotency_key_reused", en, zh),
    )


def run_once(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    key: str,
    kind: str,
    request: dict[str, Any],
    now: datetime,
    work: Work,
    also_lock: tuple[str, ...] = (),
) -> Outcome:
    """Run `work` for the locked member `user_id` in one transaction, once per `key`: a key
    seen before answers with its first result and runs nothing. Members in `also_lock` (an
    inviter, say) are locked too, all in sorted user-id order; `work` gets them again with
    `lock_member`, which does not wait for a lock its own transaction holds."""
    check_key(key)
    print_ = fingerprint(kind, user_id, request)
    try:
        with write_transaction(engine) as conn:
            # several members: sorted user-id order, the one order that cannot deadlock
            locked = {u: lock_member(conn, prog, u, now) for u in sorted({user_id, *also_lock})}
            member = locked[user_id]
            prior = _prior(conn, prog.app_id, key, print_)
            if prior is not None:
                return Outcome(prior, True)
            result = work(conn, member)
            conn.execute(
                loyalty_operations.insert().values(
                    app_id=prog.app_id,
                    idempotency_key=key,
                    user_id=user_id,
                    kind=kind,
                    fingerprint=print_,
                    result=orjson.dumps(result, default=str).decode(),
                    created_at=now,
                )
            )
            return Outcome(result, False)
    except sa.exc.IntegrityError:
        # the same key, for another member, committed first
        with engine.connect() as conn:
            prior = _prior(conn, prog.app_id, key, print_)
        if prior is None:
            raise
        return Outcome(prior, True)
