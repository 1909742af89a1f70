"""Validating a batch of raw events one by one, into a columnar batch for the event store.

A bad event never sinks its batch: it is reported with its index and reason, and the good
events of the same batch go on to be stored. Field checks run in pydantic-core; the checks
that need the receive time (clock correction, time window) and the table itself are built
column-wise, so a 1,000-event batch costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from liucun.events.model import (
    EARLIEST_TS,
    FUTURE_TOLERANCE,
    MAX_PROPERTIES_BYTES,
    EventIn,
    as_utc,
)
from liucun.warehouse.dedup import event_hashes, first_occurrences
from liucun.warehouse.schema import EVENT_ARROW_SCHEMA

_EVENTS = TypeAdapter(list[EventIn])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_NONE = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Rejected:
    index: int
    reason: str


@dataclass
class ValidatedBatch:
    """The events of one request (or import chunk) that passed, as an Arrow table."""

    table: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    # events repeated inside the batch itself: stored once, acknowledged as accepted
    duplicates_in_batch: int = 0

    @property
    def accepted(self) -> int:
        return self.table.num_rows + self.duplicates_in_batch


def _reason(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in err["loc"][1:])
    return f"{where}: {msg}" if where else msg


def _parse(raw: Sequence[Any]) -> tuple[list[int], list[EventIn], list[Rejected]]:
    try:
        return list(range(len(raw))), _EVENTS.validate_python(raw), []
    except ValidationError as exc:
        reasons: dict[int, list[str]] = {}
        for err in exc.errors(include_url=False):
            index = err["loc"][0] if err["loc"] else 0
            reasons.setdefault(int(index), []).append(_reason(err))
    rejected = [Rejected(i, "; ".join(r)) for i, r in sorted(reasons.items())]
    keep = [i for i in range(len(raw)) if i not in reasons]
    return keep, _EVENTS.validate_python([raw[i] for i in keep]), rejected


def _micros(moment: datetime) -> int:
    return (as_utc(moment) - _EPOCH) // _ONE_US


def _micros_array(moments: list[datetime | None]) -> np.ndarray:
    """µs since the epoch (int64; the minimum int64 where None), converted in Arrow's C code."""
    arr = pa.array(moments, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.array(arr.fill_null(_NONE).to_numpy())


def _event_times(
    events: list[EventIn], received_at: datetime, batch_sent_at: datetime | None
) -> np.ndarray:
    """Event times in µs since the epoch, corrected for client clock skew.

    As PostHog does: when the client says both when the event happened (`ts`) and when it sent
    the batch (`sent_at`), the event is placed at `received_at - (sent_at - ts)`, so a client
    clock that is hours off still gives the right time. Without `sent_at`, `ts` is trusted;
    without `ts`, the receive time is used. Naive times are UTC.
    """
    now = _micros(received_at)
    ts = _micros_array([e.ts for e in events])
    sent = _micros_array([e.sent_at for e in events])
    if batch_sent_at is not None:
        sent[sent == _NONE] = _micros(batch_sent_at)
    out = np.where(sent == _NONE, ts, now - (sent - ts))
    out[ts == _NONE] = now
    return out


def _time_problems(times: np.ndarray, received_at: datetime) -> dict[int, str]:
    earliest = _micros(EARLIEST_TS)
    latest = _micros(received_at + FUTURE_TOLERANCE)
    problems: dict[int, str] = {}
    for i in np.flatnonzero((times < earliest) | (times > latest)):
        shown = np.datetime64(int(times[i]), "us").astype(str)
        if times[i] < earliest:
            problems[int(i)] = f"ts {shown}Z is before 2000-01-01"
        else:
            problems[int(i)] = (
                f"ts {shown}Z is more than 23 hours after the server's time "
                f"{received_at.isoformat()}; send sent_at so a wrong client clock is corrected"
            )
    return problems


def _properties(events: list[EventIn]) -> tuple[list[str], dict[int, str]]:
    texts, problems = [], {}
    for i, e in enumerate(events):
        try:
            text = orjson.dumps(e.properties).decode()
        except (TypeError, orjson.JSONEncodeError) as exc:
            problems[i] = f"properties: must be JSON-serialisable: {exc}"
            text = "{}"
        if len(text) > MAX_PROPERTIES_BYTES:
            problems[i] = (
                f"properties: {len(text)} bytes as JSON; the limit is {MAX_PROPERTIES_BYTES}"
            )
        texts.append(text)
    return texts, problems


def validate_events(
    raw: Sequence[Any],
    app_id: str,
    received_at: datetime,
    sent_at: datetime | None = None,
    index_offset: int = 0,
) -> ValidatedBatch:
    """Check each raw event; return the good ones as a table and the bad ones with reasons.

    `sent_at` is the batch's send time for clients that give it once per batch; an event's own
    `sent_at` wins. `index_offset` numbers the events of a chunk within a larger input.
    """
    indexes, events, rejected = _parse(raw)
    times = _event_times(events, received_at, sent_at)
    properties, problems = _properties(events)
    problems.update(_time_problems(times, received_at))
    table = _to_table(events, times, properties, app_id, received_at)
    rejected += [Rejected(indexes[i], reason) for i, reason in problems.items()]
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(problems)] = False
    # the first of several copies of one event_id in a batch is the one kept
    ids = table.column("event_id")
    unique = first_occurrences(
        table.column("event_hash").to_numpy(), lambda rows: ids.take(pa.array(rows)).to_pylist()
    )
    duplicates = int((keep & ~unique).sum())
    table = table.filter(pa.array(keep & unique))
    rejected.sort(key=lambda r: r.index)
    if index_offset:
        rejected = [Rejected(r.index + index_offset, r.reason) for r in rejected]
    return ValidatedBatch(table, rejected, duplicates)


def _to_table(
    events: list[EventIn],
    times: np.ndarray,
    properties: list[str],
    app_id: str,
    received_at: datetime,
) -> pa.Table:
    n = len(events)
    ids = [e.event_id for e in events]
    user_ids = [e.user_id for e in events]
    anonymous_ids = [e.anonymous_id for e in events]
    columns: dict[str, Any] = {
        "app_id": pa.repeat(app_id, n) if n else pa.array([], pa.string()),
        "event_id": [str(u) for u in ids],
        "event_hash": event_hashes(app_id, b"".join(u.bytes for u in ids)),
        "user_id": user_ids,
        "anonymous_id": anonymous_ids,
        "distinct_id": [u or a for u, a in zip(user_ids, anonymous_ids, strict=True)],
        "session_id": [e.session_id for e in events],
        "event": [e.event for e in events],
        "ts": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "received_at": pa.array(np.full(n, _micros(received_at)), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
        "platform": [e.platform for e in events],
        "page": [e.page for e in events],
        "referrer_page": [e.referrer_page for e in events],
        "scene": [e.scene for e in events],
        "duration_ms": [e.duration_ms for e in events],
        "load_ms": [e.load_ms for e in events],
        "x": [e.x for e in events],
        "y": [e.y for e in events],
        "amount": [e.amount for e in events],
        "properties": properties,
    }
    return pa.Table.from_pydict(columns, schema=EVENT_ARROW_SCHEMA)
