"""Event stores for the reference tests: one per engine, built from batches of test events."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from liucun.events.batch import validate_events
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.store import EventStore

# Every engine an event store exists for; ClickHouse joins with issue 5.
ENGINES = ["duckdb"]
APP = "app1"


class TestEvent(Protocol):
    ts: datetime

    def raw(self) -> dict[str, Any]: ...


def open_store(engine: str, directory: Path) -> EventStore:
    if engine == "duckdb":
        return DuckDBEventStore(str(directory / "events.duckdb"))
    raise ValueError(f"no such engine {engine!r}")


@contextmanager
def events_store(
    engine: str, batches: Sequence[Sequence[TestEvent]], tz: str
) -> Iterator[EventStore]:
    """A fresh store of `engine` in its own directory, the batches appended in order through
    the real validation; each hypothesis example gets its own."""
    directory = Path(tempfile.mkdtemp(prefix="liucun-ref-"))
    store = open_store(engine, directory)
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
        store.close()
        shutil.rmtree(directory, ignore_errors=True)
