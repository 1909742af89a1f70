"""Event stores for the reference tests: one per engine, built from batches of test events."""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import clickhouse_connect

from liucun.events.batch import validate_events
from liucun.warehouse.clickhouse_store import ClickHouseEventStore
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.store import EventStore

# Every engine an event store exists for. ClickHouse runs in this process (chdb) behind its
# production client; chdb allows one engine per process, so each store is a database of its own.
ENGINES = ["duckdb", "clickhouse"]
APP = "app1"


class TestEvent(Protocol):
    ts: datetime

    def raw(self) -> dict[str, Any]: ...


_SPARE_CLICKHOUSE: list[ClickHouseEventStore] = []


def clickhouse_url(directory: Path) -> str:
    """The URL of the ClickHouse-engine store that stands for `directory` (reopening the
    directory reopens the same database)."""
    name = hashlib.blake2b(str(directory.resolve()).encode(), digest_size=12).hexdigest()
    return f"chdb://memory/t_{name}"


@functools.cache
def _clickhouse_engine() -> Any:
    """A client held open for the whole test run: chdb's in-memory engine ends with its last
    client, and a store reopened in a test must find its data, as on a server."""
    return clickhouse_connect.get_client(dsn="chdb://memory")


def open_store(engine: str, directory: Path) -> EventStore:
    """The store of `engine` kept in `directory` (for ClickHouse: a database named after it)."""
    if engine == "duckdb":
        return DuckDBEventStore(str(directory / "events.duckdb"))
    if engine == "clickhouse":
        _clickhouse_engine()
        return ClickHouseEventStore(clickhouse_url(directory))
    raise ValueError(f"no such engine {engine!r}")


@contextmanager
def events_store(
    engine: str, batches: Sequence[Sequence[TestEvent]], tz: str
) -> Iterator[EventStore]:
    """A fresh store of `engine` in its own directory, the batches appended in order through
    the real validation; each hypothesis example gets its own."""
    directory = Path(tempfile.mkdtemp(prefix="liucun-ref-"))
    # creating ClickHouse tables costs 0.2 s, emptying them 3 ms: examples reuse databases
    store = _SPARE_CLICKHOUSE.pop() if engine == "clickhouse" and _SPARE_CLICKHOUSE else None
    store = store or open_store(engine, directory)
    try:
        everything = [e for b in batches for e in b]
        received = max((e.ts for e in everything), default=datetime(2026, 1, 1, tzinfo=UTC))
        received += timedelta(hours=1)
        for b in batches:
            if not b:
                continue
            batch = validate_events([e.raw() for e in b], APP, received)
            assert batch.rejected == []
            store.append(batch.table, {APP: tz})
        yield store
    finally:
        if isinstance(store, ClickHouseEventStore):
            store.clear()
            _SPARE_CLICKHOUSE.append(store)
        else:
            store.close()
        shutil.rmtree(directory, ignore_errors=True)
