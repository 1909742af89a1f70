"""The event store interface and how a URL selects one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from liucun.state.locks import AppWriteLock
from liucun.warehouse.dialects import Dialect


class StoreBusyError(RuntimeError):
    """Another process holds the embedded event store; the message says what to do."""


class EventStore(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def append(self, table: pa.Table, timezones: Mapping[str, str]) -> np.ndarray:
        """Store the events of `table` not stored before, with their rollup rows, in one commit.

        `timezones` maps each app id in the table to its time zone (days are cut there).
        Returns a mask over the rows of `table`: True where the event is new.
        """
        ...

    def add_users(self, app_id: str, users: pa.Table) -> None:
        """Record users' creation times: a table of (user_id, created_at)."""
        ...

    def count(self, app_id: str) -> int: ...

    def export_batches(self, app_id: str, batch_rows: int = 100_000) -> Iterator[pa.Table]: ...

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        """The result of `sql`, with named `params` (those the statement does not use are
        ignored) and `tables`: Arrow tables the statement reads by name, for this query only
        (values from outside the store, such as profile attributes; columns of int64 or
        string)."""
        ...

    def close(self) -> None: ...


CLICKHOUSE_SCHEMES = ("clickhouse", "clickhouses", "chdb")


def open_event_store(
    url: str, read_only: bool = False, write_lock: AppWriteLock | None = None
) -> EventStore:
    """The event store at `url`: `duckdb:///relative/path` or `duckdb:////absolute/path`
    (embedded), `clickhouse://user:password@host:8123/db` or `clickhouses://…` (a ClickHouse
    server), `chdb://memory/db` or `chdb:///directory?database=db` (the ClickHouse engine in
    this process). Several processes writing one ClickHouse store must pass the same
    `write_lock` (`state.locks.app_write_lock` of their shared PostgreSQL state store)."""
    scheme, _, rest = url.partition("://")
    if scheme == "duckdb":
        from liucun.warehouse.duckdb_store import DuckDBEventStore

        return DuckDBEventStore(rest.removeprefix("/"), read_only=read_only)
    if scheme in CLICKHOUSE_SCHEMES:
        from liucun.warehouse.clickhouse_store import ClickHouseEventStore

        return ClickHouseEventStore(url, write_lock)
    raise ValueError(
        f"unsupported event store URL {url!r}; use duckdb:///path/events.duckdb or "
        "clickhouse://host:8123/database"
    )
