"""Group commit: announced requests share a commit, a lone one is not held back."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.writer import GroupCommitWriter
from tests.test_store import ZONES, table_of

# Long enough that a test would hang, not pass by luck, if the writer waited it out.
NEVER = 3600.0
RESULT_TIMEOUT = 60.0


class CountingStore(DuckDBEventStore):
    """The real store, remembering the row count of each commit."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.commits: list[int] = []

    def append(self, table: pa.Table, timezones: Mapping[str, str]) -> np.ndarray:
        self.commits.append(table.num_rows)
        return super().append(table, timezones)


def test_announced_requests_share_one_commit(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "events.duckdb"))
    writer = GroupCommitWriter(store, max_wait=NEVER)
    first, second = table_of("app-a", [0, 1]), table_of("app-a", [2, 1, 3])
    with writer.expecting(), writer.expecting():
        a = writer.submit(first, ZONES)
        b = writer.submit(second, ZONES)
    # both arrived while announced requests were pending: one commit holds both
    assert a.result(RESULT_TIMEOUT) == 2
    assert b.result(RESULT_TIMEOUT) == 2  # event 1 was stored by the first request
    writer.close()
    assert store.commits == [5]
    assert store.count("app-a") == 4
    store.close()


def test_a_lone_request_commits_at_once(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "events.duckdb"))
    writer = GroupCommitWriter(store, max_wait=NEVER)
    assert writer.submit(table_of("app-a", [0]), ZONES).result(RESULT_TIMEOUT) == 1
    assert writer.submit(table_of("app-a", [1]), ZONES).result(RESULT_TIMEOUT) == 1
    assert store.commits == [1, 1]
    writer.close()
    store.close()


def test_a_withdrawn_announcement_releases_the_group(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "events.duckdb"))
    writer = GroupCommitWriter(store, max_wait=NEVER)
    with writer.expecting():
        with writer.expecting():
            done = writer.submit(table_of("app-a", [4]), ZONES)
        # one request is still announced: the group waits for it ...
        with pytest.raises(TimeoutError):
            done.result(timeout=0.3)
    # ... until it is withdrawn (its body was rejected), and then commits without it
    assert done.result(RESULT_TIMEOUT) == 1
    assert store.commits == [1]
    writer.close()
    store.close()


def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "events.duckdb"))
    writer = GroupCommitWriter(store, max_wait=NEVER)
    with writer.expecting():
        done = writer.submit(table_of("app-a", [5, 6]), ZONES)
        writer.close()
    assert done.result(RESULT_TIMEOUT) == 2
    assert store.count("app-a") == 2
    store.close()
