"""Profile attributes: what an app tells liucun about its identified users (city, gender,
interests …), from `$set` on events and from imports.

Definitions (docs/segments.md#profiles):
- An event of a user (`user_id` set) whose `properties` hold a `$set` object sets each of its
  keys to its value; `$set_once` sets a key only if the user has no value for it yet (PostHog's
  convention, so a PostHog SDK's `identify(id, {...})` fills profiles as it is).
- An import sets the values given, as of the import's time.
- The latest value wins, by the event's time (or the import's): a late-arriving older event
  never overwrites a newer value. A null value is kept as "no value".
- Attributes are the latest values known, not values as of a past day.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.state.db import write_transaction
from liucun.state.tables import engage_attributes, engage_profile_sync
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.schema import Column
from liucun.warehouse.store import EventStore

MAX_NAME_CHARS = 64
MAX_VALUE_BYTES = 2048
MAX_ATTRIBUTES_PER_USER = 100
USER_ID_MAX = 200
# `$set` events are read again from this long before the last sync's end: an event received
# before that end but committed after the read (a slow writer) is picked up next time
SYNC_OVERLAP = timedelta(minutes=10)
_CHUNK = 2_000
ATTRIBUTE_COLUMNS = pa.schema(
    [
        ("user_id", pa.string()),
        ("kind", pa.string()),
        ("text", pa.string()),
        ("number", pa.float64()),
        ("value", pa.string()),
    ]
)


class ProfileError(ValueError):
    """An attribute that cannot be stored; the message says why."""


def attribute_fields(name: str, value: Any) -> dict[str, Any]:
    """The stored columns of attribute `name` = `value` (kind, text, number, JSON value)."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ProfileError(f"attribute names are 1–{MAX_NAME_CHARS} characters: {name!r}")
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        raise ProfileError(f"{name}: not a JSON value") from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise ProfileError(f"{name}: the value is over {MAX_VALUE_BYTES} bytes as JSON")
    text, number = None, None
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind, text = "bool", "true" if value else "false"
    elif isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ProfileError(f"{name}: numbers must be finite")
        kind, number = "number", float(value)
    elif isinstance(value, str):
        kind, text = "text", value
    elif isinstance(value, list):
        kind = "list"
    else:
        kind = "object"
    return {"kind": kind, "text": text, "number": number, "value": encoded.decode()}


def _insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def write_attributes(
    conn: sa.Connection,
    app_id: str,
    values: Iterable[tuple[str, str, Any, datetime, bool]],
    source: str,
) -> int:
    """Store (user_id, name, value, at, once) values; a value replaces one only if it is not
    older, and a `once` value only fills a gap. Returns the values given."""
    rows: list[dict[str, Any]] = []
    once_rows: list[dict[str, Any]] = []
    for user_id, name, value, at, once in values:
        row = {
            "app_id": app_id,
            "user_id": user_id,
            "name": name,
            "source": source,
            "updated_at": at,
            **attribute_fields(name, value),
        }
        (once_rows if once else rows).append(row)
    insert = _insert(conn)
    t = engage_attributes
    for chunk in _chunks(rows):
        statement = insert(t).values(chunk)
        new = statement.excluded
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[t.c.app_id, t.c.user_id, t.c.name],
                set_={
                    c: new[c] for c in ("kind", "text", "number", "value", "source", "updated_at")
                },
                where=t.c.updated_at <= new.updated_at,
            )
        )
    for chunk in _chunks(once_rows):
        conn.execute(insert(t).values(chunk).on_conflict_do_nothing())
    return len(rows) + len(once_rows)


def _chunks(rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    # one row per (user, name) in a statement: PostgreSQL refuses to update a row twice
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["user_id"], row["name"])
        if key not in latest or latest[key]["updated_at"] <= row["updated_at"]:
            latest[key] = row
    unique = list(latest.values())
    for start in range(0, len(unique), _CHUNK):
        yield unique[start : start + _CHUNK]


def set_values(properties: Mapping[str, Any]) -> Iterable[tuple[str, Any, bool]]:
    """(name, value, once) of the `$set` and `$set_once` objects of an event's properties."""
    for key, once in (("$set_once", True), ("$set", False)):
        values = properties.get(key)
        if isinstance(values, dict):
            for name, value in values.items():
                yield str(name), value, once


def _set_events_sql(store: EventStore) -> str:
    d = store.dialect
    text = d.column_type(Column("p", pa.string(), "string"))
    return f"""
    SELECT user_id, ts, CAST(properties AS {text}) AS properties FROM events
    WHERE app_id = {d.param("app")} AND user_id IS NOT NULL
      AND received_at > {d.param("since")} AND received_at <= {d.param("until")}
      AND CAST(properties AS {text}) LIKE {d.quote('%"$set%')}
    ORDER BY ts"""


@dataclass
class SyncReport:
    events: int = 0
    values: int = 0
    skipped: list[str] = field(default_factory=list)  # why a value was not stored


def sync_attributes(store: EventStore, engine: sa.Engine, app_id: str, now: datetime) -> SyncReport:
    """Read the `$set` events received since the last sync into the attributes."""
    with engine.connect() as conn:
        last = conn.execute(
            sa.select(engage_profile_sync.c.received_to).where(
                engage_profile_sync.c.app_id == app_id
            )
        ).scalar()
    since = _utc(last) - SYNC_OVERLAP if last is not None else datetime(2000, 1, 1, tzinfo=UTC)
    rows = store.query(_set_events_sql(store), {"app": app_id, "since": since, "until": now})
    report = SyncReport(events=rows.num_rows)
    values: list[tuple[str, str, Any, datetime, bool]] = []
    for user_id, ts, text in zip(*rows.to_pydict().values(), strict=True):
        try:
            properties = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        for name, value, once in set_values(properties if isinstance(properties, dict) else {}):
            try:
                attribute_fields(name, value)
            except ProfileError as exc:
                report.skipped.append(f"{user_id}: {exc}")
                continue
            values.append((user_id, name, value, _utc(ts), once))
    with write_transaction(engine) as conn:
        report.values = write_attributes(conn, app_id, values, "event")
        _advance(conn, app_id, now)
    return report


def _advance(conn: sa.Connection, app_id: str, until: datetime) -> None:
    t = engage_profile_sync
    statement = _insert(conn)(t).values(app_id=app_id, received_to=until, synced_at=until)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[t.c.app_id],
            set_={"received_to": statement.excluded.received_to, "synced_at": until},
            where=t.c.received_to < statement.excluded.received_to,
        )
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class ImportReport:
    accepted: int = 0
    values: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row index, why)


def import_attributes(
    engine: sa.Engine, app_id: str, rows: list[Any], now: datetime
) -> ImportReport:
    """Store imported profiles: rows of `{"user_id": …, "attributes": {name: value, …}}` (or
    the attributes beside `user_id` in the row itself), as of `now`; a bad row is reported by
    its index and the others are kept."""
    report = ImportReport()
    values: list[tuple[str, str, Any, datetime, bool]] = []
    for i, row in enumerate(rows):
        try:
            user_id, attributes = _import_row(row)
            for name, value in attributes.items():
                attribute_fields(name, value)
        except ProfileError as exc:
            report.rejected.append((i, str(exc)))
            continue
        report.accepted += 1
        values += [(user_id, n, v, now, False) for n, v in attributes.items()]
    with write_transaction(engine) as conn:
        report.values = write_attributes(conn, app_id, values, "import")
    return report


def _import_row(row: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(row, dict):
        raise ProfileError("a row is an object with user_id and attributes")
    user_id = row.get("user_id")
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= USER_ID_MAX:
        raise ProfileError(f"user_id: 1–{USER_ID_MAX} characters of text")
    if "attributes" in row:
        extra = sorted(set(row) - {"user_id", "attributes"})
        attributes = row["attributes"]
        if extra or not isinstance(attributes, dict):
            raise ProfileError("give `attributes` as an object, and nothing beside user_id")
    else:
        attributes = {k: v for k, v in row.items() if k != "user_id"}
    if not attributes:
        raise ProfileError("no attributes in the row")
    if len(attributes) > MAX_ATTRIBUTES_PER_USER:
        raise ProfileError(f"at most {MAX_ATTRIBUTES_PER_USER} attributes a row")
    return user_id, attributes


def attribute_columns(engine: sa.Engine, app_id: str, name: str) -> pa.Table:
    """Every user's value of attribute `name`: (user_id, kind, text, number, value)."""
    t = engage_attributes
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.user_id, t.c.kind, t.c.text, t.c.number, t.c.value).where(
                t.c.app_id == app_id, t.c.name == name
            )
        ).all()
    return pa.Table.from_pylist(
        [dict(zip(ATTRIBUTE_COLUMNS.names, r, strict=True)) for r in rows], ATTRIBUTE_COLUMNS
    )


def attribute_text(kind: str, text: str | None, number: float | None, value: str) -> str | None:
    """An attribute's value as the text a breakdown shows: a string as it is, a number as
    JSON writes it (a whole number without ".0", as event properties read), true/false,
    a list or object as JSON, no value as None."""
    if kind == "number" and number is not None:
        return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    if kind in ("list", "object"):
        return value
    return text


def person_attribute_values(engine: sa.Engine, app_id: str, name: str) -> pa.Table:
    """Every profiled person's value of attribute `name` as text: (person_id, value), the
    person key of the user id (what events of the user and their linked anonymous ids count
    under)."""
    table = attribute_columns(engine, app_id, name)
    values = [
        attribute_text(*row)
        for row in zip(
            *(table.column(c).to_pylist() for c in ("kind", "text", "number", "value")),
            strict=True,
        )
    ]
    return pa.table(
        {"person_id": id_keys(table.column("user_id")), "value": pa.array(values, pa.string())}
    )


def attribute_names(engine: sa.Engine, app_id: str) -> list[str]:
    """The names of the attributes that any user of the app has, sorted."""
    t = engage_attributes
    with engine.connect() as conn:
        names = conn.execute(
            sa.select(t.c.name).where(t.c.app_id == app_id).distinct().order_by(t.c.name)
        ).scalars()
        return list(names)


def attribute_users(engine: sa.Engine, app_id: str) -> list[str]:
    """The users that have any attribute."""
    t = engage_attributes
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(t.c.user_id).where(t.c.app_id == app_id).distinct()).scalars()
        )


def user_attributes(engine: sa.Engine, app_id: str, user_id: str) -> dict[str, Any]:
    """A user's attributes: name → {value, source, updated_at}."""
    t = engage_attributes
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.name, t.c.value, t.c.source, t.c.updated_at)
            .where(t.c.app_id == app_id, t.c.user_id == user_id)
            .order_by(t.c.name)
        ).all()
    return {
        r.name: {"value": json.loads(r.value), "source": r.source, "updated_at": _utc(r.updated_at)}
        for r in rows
    }
