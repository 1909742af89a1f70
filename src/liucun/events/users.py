"""Users' creation times, imported from an app's own records (`liucun import --users FILE`).

Lifecycle counts a user as new in the period they were created, as PostHog does with a
person's `created_at`; without an import, a user is created when first seen. A file gives one
row per user: `user_id` and `created_at` (ISO date-time; naive times are UTC). Importing again
is harmless: the earliest creation time of a user wins.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from liucun.events.importers import Unreadable, json_lines, parquet_rows
from liucun.events.model import EARLIEST_TS, as_utc
from liucun.warehouse.schema import TS_TYPE

CHUNK_ROWS = 10_000
USER_CREATED_SCHEMA = pa.schema([("user_id", pa.string()), ("created_at", TS_TYPE)])


class UserCreated(TypedDict):
    user_id: str
    created_at: datetime


_ROW = TypeAdapter(UserCreated)


@dataclass
class UsersReport:
    path: str
    rows: int = 0
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def check_users(rows: Sequence[Any]) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The valid rows as a (user_id, created_at UTC) table; the others by index, with why."""
    ids: list[str] = []
    times: list[datetime] = []
    rejected: list[tuple[int, str]] = []
    for i, row in enumerate(rows):
        if isinstance(row, Unreadable):
            rejected.append((i, str(row)))
            continue
        try:
            user = _ROW.validate_python(row)
        except ValidationError as exc:
            why = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            rejected.append((i, why))
            continue
        created = as_utc(user["created_at"])
        if not user["user_id"] or len(user["user_id"]) > 200:
            rejected.append((i, "user_id: must be 1 to 200 characters"))
        elif created < EARLIEST_TS:
            rejected.append((i, "created_at: before 2000-01-01"))
        else:
            ids.append(user["user_id"])
            times.append(created)
    return pa.table(
        [pa.array(ids, pa.string()), pa.array(times, TS_TYPE)], schema=USER_CREATED_SCHEMA
    ), rejected


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k and v not in ("", None)}
    elif suffix in (".jsonl", ".ndjson", ".json"):
        yield from json_lines(path)
    elif suffix in (".parquet", ".pq"):
        yield from parquet_rows(path)
    else:
        raise ValueError(f"{path.name}: give the users as .csv, .jsonl or .parquet")


def read_user_chunks(path: Path) -> Iterator[list[tuple[int, Any]]]:
    """(line, row) chunks of a users file."""
    chunk: list[tuple[int, Any]] = []
    for item in _rows(path):
        chunk.append(item)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
