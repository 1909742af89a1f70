"""The scale-out event store: ClickHouse through its official client, `clickhouse-connect`.

Several ingest servers may write one ClickHouse database at once. ClickHouse has no
transactions, so exactly-once storage rests on a lock and a lookup:

- Writers of an app take turns (`AppWriteLock`: a PostgreSQL advisory lock per app when the
  servers share a PostgreSQL state store, which scale-out requires). Under it a writer looks
  the batch's events up by hash in `event_ids` (fed with the events) and inserts only those not
  stored, so an app keeps each event_id once, as the embedded store does. So a retry
  is dropped whichever server its first attempt reached, however close together they came.
- The rollup `user_days` is fed by a materialized view in the same INSERT as the events, as
  partial sums that queries add up (an AggregatingMergeTree of simple aggregates, the shape
  of DuckDB's partial rollup rows), so it always covers exactly the stored events.
- Identity links and user creation times are written before the events they come from; a
  link or creation time written twice changes no answer (the earliest wins), so a writer that
  dies between the inserts loses nothing when the client retries.

Reads are plain (no FINAL): nothing in the tables is ever a second copy.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import clickhouse_connect
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.binding import format_str
from clickhouse_connect.driver.client import Client

from liucun.events.standard import ORDER_PAID_EVENT, PAGE_VIEW_EVENT, VISIT_EVENT
from liucun.state.locks import AppWriteLock, process_write_lock
from liucun.warehouse.dedup import first_occurrences
from liucun.warehouse.dialects import ClickHouseDialect
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.rollup import identity_links, local_days, with_person_keys
from liucun.warehouse.schema import EXPORT_COLUMN_NAMES, STORED_EVENT_COLUMNS, Column

# ClickHouse recommends inserts of at least 1,000 rows; smaller batches go through its
# asynchronous insert buffer, answered only once the buffer is written (durable when acked).
MIN_DIRECT_INSERT_ROWS = 1_000
DEFAULT_DATABASE = "liucun"
# events looked up per query for duplicates: a list of up to this many integers (200 kB)
LOOKUP_ROWS = 10_000
# few distinct values: dictionary-encoded columns scan and group several times faster
_LOW_CARDINALITY = {"app_id", "event", "platform", "page", "referrer_page", "scene"}
_PARAM = re.compile(r"%\((\w+)\)s")


def _column_ddl(dialect: ClickHouseDialect, column: Column) -> str:
    kind = dialect.column_type(column)
    if column.name in _LOW_CARDINALITY:
        kind = f"LowCardinality({kind})"
    return f"{column.name} {kind}"


def events_ddl(dialect: ClickHouseDialect) -> str:
    """The events table: one row per event, a person's events together in time order."""
    columns = ",\n    ".join(_column_ddl(dialect, c) for c in STORED_EVENT_COLUMNS)
    return f"""
CREATE TABLE IF NOT EXISTS events (
    {columns},
    day Date
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (app_id, distinct_key, ts)"""


def _partial(kind: str, function: str) -> str:
    return f"SimpleAggregateFunction({function}, {kind})"


# the rollup's columns and meaning (`rollup.rollup_partials`): partial rows added up on read
USER_DAYS_DDL = f"""
CREATE TABLE IF NOT EXISTS user_days (
    app_id LowCardinality(String), distinct_key Int64, day Date,
    distinct_id {_partial("String", "any")},
    events {_partial("Int64", "sum")}, visits {_partial("Int64", "sum")},
    page_views {_partial("Int64", "sum")}, orders {_partial("Int64", "sum")},
    amount {_partial("Decimal(38, 2)", "sum")}, duration_ms {_partial("Int64", "sum")},
    first_ts {_partial("DateTime64(6, 'UTC')", "min")},
    last_ts {_partial("DateTime64(6, 'UTC')", "max")}
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (app_id, distinct_key, day)"""

USER_DAYS_VIEW = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS user_days_feed TO user_days AS
SELECT app_id, distinct_key, day, any(distinct_id) AS distinct_id,
       toInt64(count()) AS events,
       toInt64(countIf(event = '{VISIT_EVENT}')) AS visits,
       toInt64(countIf(event = '{PAGE_VIEW_EVENT}')) AS page_views,
       toInt64(countIf(event = '{ORDER_PAID_EVENT}')) AS orders,
       toDecimal128(sumIf(ifNull(amount, 0), event = '{ORDER_PAID_EVENT}'), 2) AS amount,
       toInt64(sum(ifNull(duration_ms, 0))) AS duration_ms,
       min(ts) AS first_ts, max(ts) AS last_ts
FROM events
GROUP BY app_id, distinct_key, day"""

# every stored event's id by its hash: the duplicate lookup reads a few small granules of this
# instead of the events' (a batch's events are spread over all of a big table's granules)
EVENT_IDS_DDL = """
CREATE TABLE IF NOT EXISTS event_ids (
    app_id LowCardinality(String), event_hash Int64, event_id UUID
) ENGINE = MergeTree ORDER BY (app_id, event_hash) SETTINGS index_granularity = 256"""

EVENT_IDS_FEED = """
CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_feed TO event_ids AS
SELECT app_id, event_hash, event_id FROM events"""

IDENTITIES_DDL = """
CREATE TABLE IF NOT EXISTS identities (
    app_id LowCardinality(String), anonymous_id String, user_id String,
    ts DateTime64(6, 'UTC'), anonymous_key Int64, user_key Int64
) ENGINE = MergeTree ORDER BY (app_id, anonymous_key)"""

USER_CREATED_DDL = """
CREATE TABLE IF NOT EXISTS user_created (
    app_id LowCardinality(String), user_id String, created_at DateTime64(6, 'UTC'),
    user_key Int64
) ENGINE = MergeTree ORDER BY (app_id, user_key)"""


def sql_literal(value: Any) -> str:
    """`value` as a ClickHouse literal: strings escaped, instants as UTC microseconds."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return str(format_str(value))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a query time must carry its time zone, got {value!r}")
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"toDateTime64('{text}', 6, 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}")


def bind(sql: str, params: Mapping[str, Any] | None) -> str:
    """`sql` with each `%(name)s` placeholder replaced by the literal of `params[name]`."""
    values = params or {}

    def literal(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"the query needs parameter {name!r}")
        return sql_literal(values[name])

    return _PARAM.sub(literal, sql)


def connect(url: str, settings: Mapping[str, Any]) -> tuple[Client, str]:
    """A client for the ClickHouse at `url`, with `settings` for every query of its session,
    and the database the URL names.

    `clickhouse://user:password@host:8123/db` (HTTP), `clickhouses://…:8443/db` (HTTPS),
    `chdb://memory/db` or `chdb:///directory?database=db` (the engine in this process).
    """
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        database = (
            unquote(parsed.path.strip("/"))
            if parsed.netloc
            else parse_qs(parsed.query).get("database", [DEFAULT_DATABASE])[0]
        ) or DEFAULT_DATABASE
        location = f"chdb://{parsed.netloc}" if parsed.netloc else f"chdb://{parsed.path}"
        return clickhouse_connect.get_client(dsn=location, settings=dict(settings)), database
    if parsed.scheme not in ("clickhouse", "clickhouses"):
        raise ValueError(f"not a ClickHouse URL: {url!r}")
    secure = parsed.scheme == "clickhouses"
    client = clickhouse_connect.get_client(
        host=parsed.hostname or "localhost",
        port=parsed.port or (8443 if secure else 8123),
        username=unquote(parsed.username or "default"),
        password=unquote(parsed.password or ""),
        secure=secure,
        settings=dict(settings),
        # the writer thread and request threads share the client: no server session, whose
        # queries ClickHouse runs one at a time (settings travel with every query instead)
        autogenerate_session_id=False,
    )
    return client, unquote(parsed.path.strip("/")) or DEFAULT_DATABASE


_MEMORY_TYPES = {pa.int64(): "Int64", pa.string(): "Nullable(String)"}


def _memory_columns(schema: pa.Schema) -> str:
    """The column list of a query table of `schema` (int64 and string columns)."""
    for f in schema:
        if f.type not in _MEMORY_TYPES or not re.fullmatch(r"[a-z_][a-z0-9_]*", f.name):
            raise ValueError(f"a query table's column {f.name}: {f.type} is not supported")
    return ", ".join(f"{f.name} {_MEMORY_TYPES[f.type]}" for f in schema)


def _check_database_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise ValueError(
            f"ClickHouse database name {name!r} is invalid: use letters, digits and '_'"
        )
    return name


class ClickHouseEventStore:
    """Events, identity links and user creation times in one ClickHouse database.

    Any number of these may write one database at once if they share `write_lock` (see the
    module for the guarantee); the default lock serves the writers of one process.
    """

    def __init__(self, url: str, write_lock: AppWriteLock | None = None) -> None:
        self._write_lock = write_lock or process_write_lock()
        self.dialect = ClickHouseDialect()
        self.url = url
        settings = {
            **self.dialect.session_settings,
            # String columns come back as Arrow strings, not bytes
            "output_format_arrow_string_as_string": 1,
            # room for a duplicate lookup's lists (`LOOKUP_ROWS`); the default is 256 kB
            "max_query_size": 4 * 1024 * 1024,
        }
        self._client, database = connect(url, settings)
        self.database = _check_database_name(database)
        in_process = url.startswith("chdb:")
        # many small inserts make many small parts; a server buffers them (chdb has no server)
        self._small_insert_settings = (
            {} if in_process else {"async_insert": 1, "wait_for_async_insert": 1}
        )
        self._client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        if in_process:
            # the session's database; the client's own would be one more setting per query,
            # which chdb applies and undoes around the query (10 ms)
            self._client.command(f"USE {self.database}")
        else:
            self._client.database = self.database
        tables = (IDENTITIES_DDL, USER_CREATED_DDL, USER_DAYS_DDL, EVENT_IDS_DDL)
        for ddl in (events_ddl(self.dialect), *tables, USER_DAYS_VIEW, EVENT_IDS_FEED):
            self._client.command(ddl)

    def _stored_keys(self, table: pa.Table) -> set[tuple[str, str]]:
        """(app_id, event_id) of the events of `table` stored already (by any writer)."""
        found: set[tuple[str, str]] = set()
        for start in range(0, table.num_rows, LOOKUP_ROWS):
            part = table.slice(start, LOOKUP_ROWS)
            hashes = pc.unique(part.column("event_hash")).to_pylist()
            rows = self._client.query(
                "SELECT app_id, toString(event_id) FROM event_ids "
                f"WHERE event_hash IN ({', '.join(map(str, hashes))})"
            ).result_rows
            found.update((str(a), str(e)) for a, e in rows)
        return found

    def _duplicates(self, table: pa.Table) -> np.ndarray:
        """True for rows whose (app_id, event_id) is stored already, or is in an earlier row."""
        ids = table.select(["app_id", "event_id"])

        def keys(rows: np.ndarray) -> list[tuple[str, str]]:
            some = ids.take(pa.array(rows)).to_pydict()
            return list(zip(some["app_id"], some["event_id"], strict=True))

        dup = ~first_occurrences(table.column("event_hash").to_numpy(), keys)
        stored = self._stored_keys(table)
        if stored:
            all_keys = zip(*ids.to_pydict().values(), strict=True)
            dup |= np.fromiter((k in stored for k in all_keys), bool, table.num_rows)
        return dup

    def _insert(self, name: str, table: pa.Table) -> None:
        small = table.num_rows < MIN_DIRECT_INSERT_ROWS
        settings = self._small_insert_settings if small else {}
        self._client.insert_arrow(name, table, settings=settings or None)

    def append(self, table: pa.Table, timezones: Mapping[str, str]) -> np.ndarray:
        keyed = table if "distinct_key" in table.column_names else with_person_keys(table)
        apps = pc.unique(keyed.column("app_id")).to_pylist()
        with self._write_lock(apps):
            new = ~self._duplicates(keyed)
            fresh = keyed.filter(pa.array(new)) if not new.all() else keyed
            if fresh.num_rows == 0:
                return new
            links = identity_links(fresh)
            if links.num_rows:
                self._insert("identities", links)
            self._insert("events", fresh.append_column("day", local_days(fresh, timezones)))
        return new

    def add_users(self, app_id: str, users: pa.Table) -> None:
        """Record users' creation times (user_id, created_at); the earliest of a user wins."""
        if users.num_rows == 0:
            return
        rows = pa.table(
            {
                "app_id": pa.array([app_id] * users.num_rows, pa.string()),
                "user_id": users.column("user_id"),
                "created_at": users.column("created_at"),
                "user_key": id_keys(users.column("user_id")),
            }
        )
        self._insert("user_created", rows)

    def count(self, app_id: str) -> int:
        return int(
            self._client.query(
                f"SELECT count() FROM events WHERE app_id = {sql_literal(app_id)}"
            ).result_rows[0][0]
        )

    def export_batches(self, app_id: str, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        columns = ", ".join(
            "toString(event_id) AS event_id" if c == "event_id" else c for c in EXPORT_COLUMN_NAMES
        )
        # ordered as DuckDB orders UUIDs (as their text), so both stores export the same file
        sql = (
            f"SELECT {columns} FROM events WHERE app_id = {sql_literal(app_id)} "
            f"ORDER BY ts, {self.dialect.uuid_order('event_id')}"
        )
        settings = {"max_block_size": batch_rows}
        with self._client.query_arrow_stream(sql, settings=settings) as stream:
            for block in stream:
                yield pa.Table.from_batches([block]) if isinstance(block, pa.RecordBatch) else block

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        if not tables:
            return self._client.query_arrow(bind(sql, params))
        with self._query_tables(tables) as names:
            for name, stored in names.items():
                sql = re.sub(rf"\b{re.escape(name)}\b", stored, sql)
            return self._client.query_arrow(bind(sql, params))

    @contextmanager
    def _query_tables(self, tables: Mapping[str, pa.Table]) -> Iterator[dict[str, str]]:
        """Each of `tables` as a Memory table of a name of its own (so concurrent queries'
        tables never meet), dropped afterwards: name → stored name. A session's temporary
        table would not do: the client keeps no session (see `connect`). On a cluster the
        table is on the node that runs the query; join it there (a GLOBAL JOIN)."""
        stored: dict[str, str] = {}
        try:
            for name, table in tables.items():
                stored[name] = f"query_{name}_{uuid.uuid4().hex}"
                self._client.command(
                    f"CREATE TABLE {stored[name]} ({_memory_columns(table.schema)}) ENGINE = Memory"
                )
                if table.num_rows:
                    self._client.insert_arrow(stored[name], table)
            yield stored
        finally:
            for name in stored.values():
                self._client.command(f"DROP TABLE IF EXISTS {name}")

    def clear(self) -> None:
        """Delete every stored row, keeping the tables (a test's store reused for the next)."""
        for table in ("events", "user_days", "event_ids", "identities", "user_created"):
            self._client.command(f"TRUNCATE TABLE {table}")

    def drop(self) -> None:
        """Remove the store's database and everything in it (a failed migration's target)."""
        self._client.command(f"DROP DATABASE IF EXISTS {self.database}")

    def close(self) -> None:
        self._client.close()
