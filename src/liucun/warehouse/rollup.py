"""The per-user-per-day rollup and the identity links, derived from newly stored events.

The rollup table holds partial aggregates: each commit appends one row per (app, distinct id,
app-local day) that it touched, and queries add the partials up (the shape ClickHouse's
SummingMergeTree keeps). So ingest never updates a row in place, and activity and retention
queries read this table instead of the events.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from liucun.events.standard import ORDER_PAID_EVENT, PAGE_VIEW_EVENT, VISIT_EVENT
from liucun.warehouse.dialects import Dialect

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
    last_ts {timestamp} NOT NULL
)"""

IDENTITIES_DDL = """
CREATE TABLE IF NOT EXISTS identities (
    app_id {string} NOT NULL,
    anonymous_id {string} NOT NULL,
    user_id {string} NOT NULL,
    ts {timestamp} NOT NULL
)"""

IDENTITY_SCHEMA = pa.schema(
    [
        ("app_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("user_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)


def rollup_insert_sql(dialect: Dialect, new_events: str, zones: str) -> str:
    """SQL that appends the rollup partials of the events in relation `new_events`.

    `zones` is a relation (app_id, tz) giving each app's time zone: a day is the app's day.
    Definitions: `visits` counts `app_open` events, `page_views` counts `page_view`,
    `orders`/`amount` count and add up `order_paid`, `duration_ms` adds up dwell times.
    """
    day = dialect.local_date("n.ts", "z.tz")
    q = dialect.quote
    return f"""
    INSERT INTO user_days
    SELECT n.app_id, n.distinct_id, {day} AS day,
           count(*),
           sum(CASE WHEN n.event = {q(VISIT_EVENT)} THEN 1 ELSE 0 END),
           sum(CASE WHEN n.event = {q(PAGE_VIEW_EVENT)} THEN 1 ELSE 0 END),
           sum(CASE WHEN n.event = {q(ORDER_PAID_EVENT)} THEN 1 ELSE 0 END),
           sum(CASE WHEN n.event = {q(ORDER_PAID_EVENT)} THEN coalesce(n.amount, 0) ELSE 0 END),
           sum(coalesce(n.duration_ms, 0)),
           min(n.ts), max(n.ts)
    FROM {new_events} AS n JOIN {zones} AS z ON z.app_id = n.app_id
    GROUP BY n.app_id, n.distinct_id, {day}
    """


def identity_links(events: pa.Table) -> pa.Table:
    """(app_id, anonymous_id, user_id, ts) for each `identify` and `alias` event in `events`.

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
                schema=IDENTITY_SCHEMA,
            ),
            pa.table(
                [
                    alias.column("app_id"),
                    pa.array(alias_ids, pa.string()),
                    alias.column("user_id"),
                    alias.column("ts"),
                ],
                schema=IDENTITY_SCHEMA,
            ),
        ]
    )
    return links.filter(pc.is_valid(links.column("anonymous_id")))
