"""The embedded event store: one DuckDB file, owned by one process."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from liucun.warehouse.dedup import HashIndex, first_occurrences
from liucun.warehouse.dialects import DuckDBDialect
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.rollup import (
    IDENTITIES_DDL,
    USER_CREATED_DDL,
    USER_DAYS_DDL,
    identity_links,
    rollup_partials,
    with_person_keys,
)
from liucun.warehouse.schema import EXPORT_COLUMN_NAMES, STORED_EVENT_COLUMNS
from liucun.warehouse.store import StoreBusyError

# DuckDB folds its write-ahead log into the table file (a checkpoint) once the log passes this
# size, inside the commit that crosses it. At DuckDB's default of 16 MB (about 40,000 events)
# each checkpoint recompresses the half-full row group again: over 1 M events through HTTP,
# 30,000 events/s at 16 MB against 40,500 at 256 MB (bench/ingest.py). The price: up to
# 256 MB of log to replay when the server restarts after a crash.
CHECKPOINT_THRESHOLD = "256MB"

# (table, key column, id column): the person keys each table keeps (`person_keys`)
PERSON_KEY_COLUMNS = (
    ("events", "distinct_key", "distinct_id"),
    ("user_days", "distinct_key", "distinct_id"),
    ("identities", "anonymous_key", "anonymous_id"),
    ("identities", "user_key", "user_id"),
    ("user_created", "user_key", "user_id"),
)


def _keys(table: pa.Table, rows: np.ndarray) -> list[tuple[str, str]]:
    """(app_id, event_id) of the given rows of `table`."""
    some = table.select(["app_id", "event_id"]).take(pa.array(rows))
    return list(zip(*some.to_pydict().values(), strict=True))


class DuckDBEventStore:
    """Events, the daily rollup and identity links in one DuckDB database file.

    All writes go through `append`, serialised by a lock; a commit is durable when `append`
    returns (DuckDB syncs its write-ahead log at commit).
    """

    def __init__(self, path: str, read_only: bool = False) -> None:
        self.dialect = DuckDBDialect()
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusyError(
                    f"the event store {path} is open in another process (is `liucun serve` "
                    "running?). Stop that process, or use its HTTP API"
                ) from None
            raise
        # Results and casts of TIMESTAMPTZ use the session zone; ours is always UTC.
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        # a library draws nothing on its caller's terminal (DuckDB would, for long queries)
        self._con.execute("SET enable_progress_bar = false")
        # DuckDB 2.0.0's common-subplan optimizer returns no rows for a join of two aggregates
        # over one subquery (the person-days of lifecycle and first-time retention); the
        # reference tests in tests/test_analytics_reference.py catch it if it comes back.
        # Its CTE filter pusher pushes the OR of every reader's filter into a materialized CTE,
        # evaluating the funnel's step expressions twice: 15% of a funnel (bench/analytics.py).
        self._con.execute("SET disabled_optimizers = 'common_subplan,cte_filter_pusher'")
        self._write_lock = threading.Lock()
        if not read_only:
            self._create_tables()
            self._add_person_keys()
        hashes = self._con.execute("SELECT event_hash FROM events").fetchnumpy()["event_hash"]
        self._index = HashIndex(np.asarray(hashes, dtype=np.int64))

    def _create_tables(self) -> None:
        columns = ",\n".join(
            f"{c.name} {self.dialect.column_type(c)}" for c in STORED_EVENT_COLUMNS
        )
        types = {"string": "VARCHAR", "decimal": "DECIMAL(18, 2)", "timestamp": "TIMESTAMPTZ"}
        self._con.execute(f"CREATE TABLE IF NOT EXISTS events ({columns})")
        self._con.execute(USER_DAYS_DDL.format(**types))
        self._con.execute(IDENTITIES_DDL.format(**types))
        self._con.execute(USER_CREATED_DDL.format(**types))

    def _add_person_keys(self) -> None:
        """Give the tables of a store written before person keys existed their key columns."""
        con = self._con
        for table, key, source in PERSON_KEY_COLUMNS:
            present = con.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = $t AND column_name = $c",
                {"t": table, "c": key},
            ).fetchall()
            if present[0][0]:
                continue
            ids = con.sql(f"SELECT DISTINCT {source} AS id FROM {table}").to_arrow_table()
            con.register("person_key_map", pa.table({"id": ids["id"], "k": id_keys(ids["id"])}))
            try:
                con.execute(
                    f"BEGIN TRANSACTION; ALTER TABLE {table} ADD COLUMN {key} BIGINT; "
                    f"UPDATE {table} SET {key} = m.k FROM person_key_map m "
                    f"WHERE m.id = {table}.{source}; COMMIT"
                )
                # DuckDB cannot add the constraint in the transaction that filled the column
                con.execute(f"ALTER TABLE {table} ALTER COLUMN {key} SET NOT NULL")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("person_key_map")

    def _confirmed_duplicates(self, con: duckdb.DuckDBPyConnection, table: pa.Table) -> np.ndarray:
        """True for rows whose (app_id, event_id) is stored already, or is in an earlier row.

        Index hits are only candidates, confirmed against the stored ids; a table may hold
        one event twice (several requests' batches are appended together).
        """
        hashes = table.column("event_hash").to_numpy()
        dup = ~first_occurrences(hashes, lambda rows: _keys(table, rows))
        candidates = np.flatnonzero(self._index.seen(hashes))
        if len(candidates) == 0:
            return dup
        cand = table.select(["app_id", "event_id", "event_hash"]).take(pa.array(candidates))
        con.register("dedup_candidates", cand)
        stored = con.execute(
            "SELECT e.app_id, CAST(e.event_id AS VARCHAR) FROM events e "
            "WHERE e.event_hash IN (SELECT event_hash FROM dedup_candidates)"
        ).fetchall()
        con.unregister("dedup_candidates")
        stored_keys = set(stored)
        for i, key in zip(
            candidates,
            zip(*cand.select(["app_id", "event_id"]).to_pydict().values(), strict=True),
            strict=True,
        ):
            dup[i] |= key in stored_keys
        return dup

    def append(self, table: pa.Table, timezones: Mapping[str, str]) -> np.ndarray:
        with self._write_lock:
            con = self._con
            new = ~self._confirmed_duplicates(con, table)
            fresh = table.filter(pa.array(new)) if not new.all() else table
            if fresh.num_rows == 0:
                return new
            keyed = fresh if "distinct_key" in fresh.column_names else with_person_keys(fresh)
            rollup = rollup_partials(keyed, timezones)
            links = identity_links(fresh)
            con.register("new_events", keyed)
            con.register("new_rollup", rollup)
            con.register("new_links", links)
            statements = [
                "BEGIN TRANSACTION",
                # by name: a store given its key columns later has them last
                "INSERT INTO events BY NAME SELECT * FROM new_events",
                "INSERT INTO user_days BY NAME SELECT * FROM new_rollup",
                *(
                    ["INSERT INTO identities BY NAME SELECT * FROM new_links"]
                    if links.num_rows
                    else []
                ),
                "COMMIT",
            ]
            try:
                # one call for the whole transaction: each call gives up the GIL and has to
                # win it back from the request threads, which costs more than the SQL itself
                con.execute(";\n".join(statements))
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # no transaction left to roll back
                    con.execute("ROLLBACK")
                raise
            finally:
                for name in ("new_events", "new_rollup", "new_links"):
                    con.unregister(name)
            self._index.add(fresh.column("event_hash").to_numpy())
            return new

    def add_users(self, app_id: str, users: pa.Table) -> None:
        """Record users' creation times (user_id, created_at); the earliest of a user wins."""
        if users.num_rows == 0:
            return
        rows = users.append_column(
            "app_id", pa.array([app_id] * users.num_rows, pa.string())
        ).append_column("user_key", id_keys(users.column("user_id")))
        with self._write_lock:
            self._con.register("new_users", rows)
            try:
                self._con.execute(
                    "INSERT INTO user_created BY NAME "
                    "SELECT app_id, user_id, created_at, user_key FROM new_users"
                )
            finally:
                self._con.unregister("new_users")

    def _reader(self) -> duckdb.DuckDBPyConnection:
        # a cursor is a connection of its own to the same database, safe beside the writer
        return self._con.cursor()

    def count(self, app_id: str) -> int:
        row = (
            self._reader()
            .execute("SELECT count(*) FROM events WHERE app_id = $app", {"app": app_id})
            .fetchone()
        )
        return int(row[0]) if row else 0

    def export_batches(self, app_id: str, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        cols = ", ".join(EXPORT_COLUMN_NAMES)
        reader = (
            self._reader()
            .sql(
                f"SELECT {cols} FROM events WHERE app_id = $app ORDER BY ts, event_id",
                params={"app": app_id},
            )
            .to_arrow_reader(batch_rows)
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        # DuckDB refuses parameters a statement does not use; callers may pass a shared set
        used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", sql)}
        reader = self._reader()  # its own connection: the names it registers are its own
        for name, table in (tables or {}).items():
            reader.register(name, table)
        return reader.sql(sql, params=used).to_arrow_table()

    def close(self) -> None:
        self._con.close()
