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
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from liucun.events import columnar
from liucun.events.model import (
    EARLIEST_TS,
    FUTURE_TOLERANCE,
    MAX_PROPERTIES_BYTES,
    EventIn,
    as_utc,
)
from liucun.events.standard import STANDARD_EVENTS
from liucun.warehouse.dedup import event_hashes, first_occurrences
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.schema import EVENT_ARROW_SCHEMA, STORED_EVENT_ARROW_SCHEMA, TS_TYPE

_EVENTS = TypeAdapter(list[EventIn])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_NONE = np.iinfo(np.int64).min
_DERIVED = ("app_id", "event_hash", "distinct_id", "received_at")
# The columns a client sends, as Arrow builds them from the validated dicts.
_WIRE_SCHEMA = pa.schema(
    [f for f in EVENT_ARROW_SCHEMA if f.name not in _DERIVED] + [pa.field("sent_at", TS_TYPE)]
)
_NEEDS_FIELDS = {name: e.required for name, e in STANDARD_EVENTS.items() if e.required}
_NEEDS_PROPERTIES = {
    name: e.required_properties for name, e in STANDARD_EVENTS.items() if e.required_properties
}


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


def _parse(raw: Sequence[Any]) -> tuple[list[int], list[dict[str, Any]], list[Rejected]]:
    try:
        return list(range(len(raw))), _EVENTS.validate_python(raw), []  # type: ignore[return-value]
    except ValidationError as exc:
        reasons: dict[int, list[str]] = {}
        for err in exc.errors(include_url=False):
            index = err["loc"][0] if err["loc"] else 0
            reasons.setdefault(int(index), []).append(_reason(err))
    rejected = [Rejected(i, "; ".join(r)) for i, r in sorted(reasons.items())]
    keep = [i for i in range(len(raw)) if i not in reasons]
    return keep, _EVENTS.validate_python([raw[i] for i in keep]), rejected  # type: ignore[return-value]


def _micros(moment: datetime) -> int:
    return (as_utc(moment) - _EPOCH) // _ONE_US


def _flatten_rows(rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Turn validated dicts into Arrow-ready values, in place, in one pass.

    A numeric scene becomes text, and `properties` becomes its JSON text, checked for size and
    for the keys a standard event requires. Returns, per row, its problems.
    """
    problems: dict[int, list[str]] = {}
    for i, row in enumerate(rows):
        scene = row.get("scene")
        if scene is not None and not isinstance(scene, str):
            row["scene"] = str(scene)
        props = row.get("properties")
        if props is None:
            row["properties"] = "{}"
            props = {}
        else:
            try:
                text = orjson.dumps(props).decode()
            except (TypeError, orjson.JSONEncodeError) as exc:
                problems[i] = [f"properties: must be JSON-serialisable: {exc}"]
                text = "{}"
            if len(text) > MAX_PROPERTIES_BYTES:
                problems[i] = [
                    f"properties: {len(text)} bytes as JSON; the limit is {MAX_PROPERTIES_BYTES}"
                ]
            row["properties"] = text
        needed = _NEEDS_PROPERTIES.get(row["event"])
        if needed:
            missing = [f"properties.{key}" for key in needed if key not in props]
            if missing:
                problems.setdefault(i, []).extend(missing)
    return problems


def _missing_fields(wire: pa.Table) -> dict[int, list[str]]:
    """Per row, the fields its standard event requires and it lacks (column-wise)."""
    missing: dict[int, list[str]] = {}
    encoded = wire.column("event").combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    for code, name in enumerate(encoded.dictionary.to_pylist()):
        fields = _NEEDS_FIELDS.get(name)
        if not fields:
            continue
        is_it = codes == code
        for f in fields:
            absent = wire.column(f).is_null().to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(is_it & absent):
                missing.setdefault(int(i), []).append(f)
    return missing


def _field_problems(wire: pa.Table, property_problems: dict[int, list[str]]) -> dict[int, str]:
    """Why rows break the rules that span fields: an id to count them by; required fields."""
    problems: dict[int, str] = {}
    no_user = wire.column("user_id").is_null().to_numpy(zero_copy_only=False)
    no_device = wire.column("anonymous_id").is_null().to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(no_user & no_device).tolist():
        problems[row] = "an event needs a user_id or an anonymous_id (or both)"
    missing = _missing_fields(wire)
    names = wire.column("event")
    for i, extra in property_problems.items():
        if extra and extra[0].startswith("properties:"):
            problems.setdefault(i, extra[0])
        else:
            missing.setdefault(i, []).extend(extra)
    for i, fields in missing.items():
        problems.setdefault(i, f"event {names[i].as_py()!r} requires {', '.join(fields)}")
    return problems


def _micros_column(column: pa.ChunkedArray) -> np.ndarray:
    """µs since the epoch as int64, with the minimum int64 where null."""
    return np.array(column.cast(pa.int64()).fill_null(_NONE).to_numpy())


def _event_times(
    wire: pa.Table, received_at: datetime, batch_sent_at: datetime | None
) -> np.ndarray:
    """Event times in µs since the epoch, corrected for client clock skew.

    As PostHog does: when the client says both when the event happened (`ts`) and when it sent
    the batch (`sent_at`), the event is placed at `received_at - (sent_at - ts)`, so a client
    clock that is hours off still gives the right time. Without `sent_at`, `ts` is trusted;
    without `ts`, the receive time is used. Naive times are UTC.
    """
    now = _micros(received_at)
    ts = _micros_column(wire.column("ts"))
    sent = _micros_column(wire.column("sent_at"))
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


@dataclass
class CheckedBatch:
    """Events that passed every check that does not depend on the app.

    Its table has the stored columns but `app_id` and `event_hash`: times are corrected, and
    `distinct_id` and `received_at` are set. This part of ingest can run in another process.
    """

    table: pa.Table
    rejected: list[Rejected]
    received: int


def check_events(
    raw: Sequence[Any], received_at: datetime, sent_at: datetime | None = None
) -> CheckedBatch:
    """Check each raw event; keep the good ones as columns and the bad ones with reasons.

    `sent_at` is the batch's send time for clients that give it once per batch; an event's own
    `sent_at` wins.
    """
    indexes, rows, rejected = _parse(raw)
    property_problems = _flatten_rows(rows)
    wire = pa.Table.from_pylist(rows, schema=_WIRE_SCHEMA)
    # one spelling of each UUID, so that a retry in capitals is the same event
    wire = wire.set_column(0, "event_id", pc.utf8_lower(wire.column("event_id")))
    times = _event_times(wire, received_at, sent_at)
    problems = _time_problems(times, received_at)
    for i, reason in _field_problems(wire, property_problems).items():
        problems.setdefault(i, reason)
    keep = np.ones(wire.num_rows, dtype=bool)
    keep[list(problems)] = False
    table = _checked_table(wire, times, received_at).filter(pa.array(keep))
    rejected += [Rejected(indexes[i], reason) for i, reason in problems.items()]
    rejected.sort(key=lambda r: r.index)
    return CheckedBatch(table, rejected, len(raw))


def for_app(checked: CheckedBatch, app_id: str, index_offset: int = 0) -> ValidatedBatch:
    """The checked events as rows of app `app_id`, each event_id once.

    `index_offset` numbers the events of a chunk within a larger input.
    """
    table = _with_app(checked.table, app_id)
    # the first of several copies of one event_id in a batch is the one kept
    ids = table.column("event_id")
    unique = first_occurrences(
        table.column("event_hash").to_numpy(), lambda rows: ids.take(pa.array(rows)).to_pylist()
    )
    duplicates = int((~unique).sum())
    if duplicates:
        table = table.filter(pa.array(unique))
    rejected = checked.rejected
    if index_offset:
        rejected = [Rejected(r.index + index_offset, r.reason) for r in rejected]
    return ValidatedBatch(table, rejected, duplicates)


def validate_events(
    raw: Sequence[Any],
    app_id: str,
    received_at: datetime,
    sent_at: datetime | None = None,
    index_offset: int = 0,
) -> ValidatedBatch:
    """`check_events` and `for_app` in one step, for callers in one process."""
    return for_app(check_events(raw, received_at, sent_at), app_id, index_offset)


# ingest derives the person keys too, in the worker processes, off the writer's path
_CHECKED_SCHEMA = pa.schema(
    [f for f in STORED_EVENT_ARROW_SCHEMA if f.name not in ("app_id", "event_hash")]
)


def _checked_table(wire: pa.Table, times: np.ndarray, received_at: datetime) -> pa.Table:
    n = wire.num_rows
    distinct_id = pc.coalesce(wire.column("user_id"), wire.column("anonymous_id"))
    derived = {
        "distinct_id": distinct_id,
        "distinct_key": id_keys(distinct_id),
        "ts": pa.array(times).cast(TS_TYPE),
        "received_at": pa.array(np.full(n, _micros(received_at))).cast(TS_TYPE),
    }
    columns = [
        derived[f.name] if f.name in derived else wire.column(f.name) for f in _CHECKED_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=_CHECKED_SCHEMA)


def _with_app(checked: pa.Table, app_id: str) -> pa.Table:
    uuid_bytes = columnar.uuid_bytes(checked.column("event_id").combine_chunks())
    derived = {
        "app_id": pa.array([app_id] * checked.num_rows, pa.string()),
        "event_hash": pa.array(event_hashes(app_id, uuid_bytes)),
    }
    columns = [
        derived[f.name] if f.name in derived else checked.column(f.name)
        for f in STORED_EVENT_ARROW_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=STORED_EVENT_ARROW_SCHEMA)
