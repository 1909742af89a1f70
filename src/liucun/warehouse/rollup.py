"""The per-user-per-day rollup and the identity links, derived from newly stored events.

The rollup table holds partial aggregates: each commit appends one row per (app, distinct id,
app-local day) that it touched, and queries add the partials up (the shape ClickHouse's
SummingMergeTree keeps). So ingest never updates a row in place, and activity and retention
queries read this table instead of the events.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from liucun.events.standard import ORDER_PAID_EVENT, PAGE_VIEW_EVENT, VISIT_EVENT
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.schema import AMOUNT_TYPE, TS_TYPE

USER_DAYS_DDL = """
CREATE TABLE IF NOT EXISTS user_days (
    app_id {string} NOT NULL,
    distinct_id {string} NOT NULL,
    day DATE NOT NULL,
    events BIGINT NOT NULL,
    visits BIGINT NOT NULL,
    page_views BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    amount {decimal} NOT NULL,
    duration_ms BIGINT NOT NULL,
    first_ts {timestamp} NOT NULL,
    last_ts {timestamp} NOT NULL,
    distinct_key BIGINT NOT NULL
)"""

IDENTITIES_DDL = """
CREATE TABLE IF NOT EXISTS identities (
    app_id {string} NOT NULL,
    anonymous_id {string} NOT NULL,
    user_id {string} NOT NULL,
    ts {timestamp} NOT NULL,
    anonymous_key BIGINT NOT NULL,
    user_key BIGINT NOT NULL
)"""

USER_CREATED_DDL = """
CREATE TABLE IF NOT EXISTS user_created (
    app_id {string} NOT NULL,
    user_id {string} NOT NULL,
    created_at {timestamp} NOT NULL,
    user_key BIGINT NOT NULL
)"""

_LINK_SCHEMA = pa.schema(
    [
        ("app_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("user_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)


ROLLUP_SCHEMA = pa.schema(
    [
        ("app_id", pa.string()),
        ("distinct_id", pa.string()),
        ("day", pa.date32()),
        ("events", pa.int64()),
        ("visits", pa.int64()),
        ("page_views", pa.int64()),
        ("orders", pa.int64()),
        ("amount", AMOUNT_TYPE),
        ("duration_ms", pa.int64()),
        ("first_ts", TS_TYPE),
        ("last_ts", TS_TYPE),
        ("distinct_key", pa.int64()),
    ]
)
_ZERO_AMOUNT = pa.scalar(0, AMOUNT_TYPE)


def _local_days(ts: pa.ChunkedArray, timezone: str) -> pa.ChunkedArray:
    """The calendar date of each UTC instant in `timezone` (IANA rules, DST included)."""
    return pc.cast(pc.local_timestamp(ts.cast(pa.timestamp("us", tz=timezone))), pa.date32())


def local_days(events: pa.Table, timezones: Mapping[str, str]) -> pa.Array:
    """The app-local calendar day of each event of `events` (`timezones`: app id → zone)."""
    apps = pc.unique(events.column("app_id")).to_pylist()
    if len(apps) == 1:
        return _local_days(events.column("ts"), timezones[apps[0]]).combine_chunks()
    days = pa.nulls(events.num_rows, pa.date32())
    for app in apps:
        of_app = pc.equal(events.column("app_id"), app)
        zone_days = _local_days(events.column("ts"), timezones[app])
        days = pc.if_else(of_app, zone_days, days)
    return days.combine_chunks() if isinstance(days, pa.ChunkedArray) else days


def _app_partials(events: pa.Table, timezone: str) -> pa.Table:
    kind = events.column("event")
    is_order = pc.equal(kind, ORDER_PAID_EVENT)
    amounts = pc.if_else(
        is_order, pc.fill_null(events.column("amount"), _ZERO_AMOUNT), _ZERO_AMOUNT
    )
    parts = pa.table(
        {
            "app_id": events.column("app_id"),
            "distinct_id": events.column("distinct_id"),
            "distinct_key": events.column("distinct_key"),
            "day": _local_days(events.column("ts"), timezone),
            "visits": pc.cast(pc.equal(kind, VISIT_EVENT), pa.int64()),
            "page_views": pc.cast(pc.equal(kind, PAGE_VIEW_EVENT), pa.int64()),
            "orders": pc.cast(is_order, pa.int64()),
            "amount": amounts,
            "duration_ms": pc.fill_null(events.column("duration_ms"), 0),
            "ts": events.column("ts"),
        }
    )
    sums = [(c, "sum") for c in ("visits", "page_views", "orders", "amount", "duration_ms")]
    # grouped by the key, the id's stand-in (8 bytes instead of a string: a faster hash)
    keys = ["app_id", "distinct_key", "day"]
    grouped = parts.group_by(keys, use_threads=False).aggregate(
        [("distinct_id", "first"), ("visits", "count"), *sums, ("ts", "min"), ("ts", "max")]
    )
    return pa.Table.from_arrays(
        [grouped.column(c) for c in ("app_id", "distinct_id_first", "day", "visits_count")]
        + [grouped.column(f"{c}_sum") for c, _ in sums]
        + [grouped.column("ts_min"), grouped.column("ts_max")]
        + [grouped.column("distinct_key")],
        schema=ROLLUP_SCHEMA,
    )


def rollup_partials(events: pa.Table, timezones: Mapping[str, str]) -> pa.Table:
    """The rollup rows of newly stored `events`: one per (app, distinct id, app-local day).

    `events` carry their person keys (`with_person_keys`).

    `timezones` maps each app id to its time zone: a day is the app's calendar day.
    Definitions: `events` counts all events, `visits` counts `app_open`, `page_views` counts
    `page_view`, `orders`/`amount` count and add up `order_paid`, `duration_ms` adds up dwell
    times, `first_ts`/`last_ts` are the earliest and latest event times.
    """
    apps = pc.unique(events.column("app_id")).to_pylist()
    if len(apps) == 1:
        return _app_partials(events, timezones[apps[0]])
    tables = [
        _app_partials(events.filter(pc.equal(events.column("app_id"), app)), timezones[app])
        for app in apps
    ]
    return pa.concat_tables(tables)


def with_person_keys(events: pa.Table) -> pa.Table:
    """`events` (event columns) with the `distinct_key` column a store keeps beside them."""
    return events.append_column("distinct_key", id_keys(events.column("distinct_id")))


def identity_links(events: pa.Table) -> pa.Table:
    """(app_id, anonymous_id, user_id, ts, anonymous_key, user_key) for each `identify` and
    `alias` event in `events` (the keys: `person_keys`).

    `identify` links the event's anonymous id to its user id; `alias` links
    `properties.alias` to the user id. When one anonymous id is linked to several users, the
    earliest link wins (as a PostHog person cannot be merged into a second one).
    """
    kinds = events.column("event")
    identify = events.filter(pc.equal(kinds, "identify"))
    alias = events.filter(pc.equal(kinds, "alias"))
    alias_ids = [orjson.loads(p).get("alias") for p in alias.column("properties").to_pylist()]
    alias_ids = [str(a) if a is not None else None for a in alias_ids]
    links = pa.concat_tables(
        [
            pa.table(
                [
                    identify.column("app_id"),
                    identify.column("anonymous_id"),
                    identify.column("user_id"),
                    identify.column("ts"),
                ],
                schema=_LINK_SCHEMA,
            ),
            pa.table(
                [
                    alias.column("app_id"),
                    pa.array(alias_ids, pa.string()),
                    alias.column("user_id"),
                    alias.column("ts"),
                ],
                schema=_LINK_SCHEMA,
            ),
        ]
    )
    links = links.filter(pc.is_valid(links.column("anonymous_id")))
    return links.append_column(
        "anonymous_key", id_keys(links.column("anonymous_id"))
    ).append_column("user_key", id_keys(links.column("user_id")))
