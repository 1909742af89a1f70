"""Exactly-once storage in every event store (the DuckDB hash index, collisions, reopening)."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liucun.events.batch import validate_events
from liucun.warehouse.dedup import HashIndex, event_hashes
from liucun.warehouse.duckdb_store import PERSON_KEY_COLUMNS, DuckDBEventStore
from liucun.warehouse.person_keys import id_key
from liucun.warehouse.queries import person_days_sql
from liucun.warehouse.store import EventStore
from tests.reference_stores import ENGINES, open_store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ZONES = {"app-a": "Asia/Shanghai", "app-b": "UTC"}
APPS = sorted(ZONES)
# a small pool, so that repeats within a batch, across batches and across apps are common
POOL: list[dict[str, Any]] = [
    {
        "event_id": str(uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15 % (1 << 128))),
        "event": "app_open" if i % 2 else "page_view",
        "page": "pages/home",
        "anonymous_id": f"device-{i % 4}",
        "ts": (NOW - timedelta(hours=i)).isoformat(),
    }
    for i in range(10)
]

Batch = tuple[str, list[int]]
batches_st = st.lists(
    st.tuples(st.sampled_from(APPS), st.lists(st.integers(0, len(POOL) - 1), max_size=12)),
    min_size=1,
    max_size=8,
)


def table_of(app: str, picks: list[int]) -> pa.Table:
    batch = validate_events([POOL[i] for i in picks], app, NOW)
    assert batch.rejected == []
    return batch.table


def keys_of(table: pa.Table) -> list[tuple[str, str]]:
    return list(zip(table["app_id"].to_pylist(), table["event_id"].to_pylist(), strict=True))


def stored_counts(store: EventStore) -> dict[str, int]:
    return {app: store.count(app) for app in APPS}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches=batches_st, group=st.integers(1, 3))
def test_random_batches_store_each_event_once(
    engine: str, batches: list[Batch], group: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(engine, Path(tmp))
        seen: set[tuple[str, str]] = set()
        tables = [table_of(app, picks) for app, picks in batches]
        # several requests' tables are appended as one, as the group-commit writer does
        for start in range(0, len(tables), group):
            table = pa.concat_tables(tables[start : start + group])
            expected = []
            for key in keys_of(table):
                expected.append(key not in seen)
                seen.add(key)
            mask = store.append(table, ZONES)
            assert mask.dtype == bool and len(mask) == table.num_rows
            assert mask.tolist() == expected

        want = {app: sum(1 for a, _ in seen if a == app) for app in APPS}
        assert stored_counts(store) == want
        rows = store.query("SELECT app_id, CAST(event_id AS VARCHAR) AS id FROM events")
        assert sorted(keys_of(rows.rename_columns(["app_id", "event_id"]))) == sorted(seen)
        store.close()

        # reopened (DuckDB rebuilds its index): appending everything again stores nothing
        reopened = open_store(engine, Path(tmp))
        for table in tables:
            assert not reopened.append(table, ZONES).any()
        assert stored_counts(reopened) == want
        reopened.close()


def forged(app: str, event_ids: list[str], event_hash: int) -> pa.Table:
    """Valid events of `app` whose event_hash column is forced to one value (a collision)."""
    # one table per event, so that a repeated id stays in (validation keeps one copy a batch)
    parts = [validate_events([{**POOL[0], "event_id": e}], app, NOW).table for e in event_ids]
    table = pa.concat_tables(parts)
    assert table.num_rows == len(event_ids)
    return table.set_column(2, "event_hash", pa.array([event_hash] * len(event_ids), pa.int64()))


def test_hash_collision_across_appends_keeps_both(engine: str, tmp_path: Path) -> None:
    store = open_store(engine, tmp_path)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert store.append(forged("app-a", [first], 42), ZONES).tolist() == [True]
    # same hash, different event: the index hit is a candidate only, the stored ids say new
    assert store.append(forged("app-a", [second], 42), ZONES).tolist() == [True]
    # the same event again is a real duplicate, found through the same hash
    assert store.append(forged("app-a", [first], 42), ZONES).tolist() == [False]
    # same hash and same event_id in another app: another event
    assert store.append(forged("app-b", [first], 42), ZONES).tolist() == [True]
    ids = store.query("SELECT CAST(event_id AS VARCHAR) AS id FROM events WHERE app_id = 'app-a'")
    assert sorted(ids["id"].to_pylist()) == sorted([first, second])
    assert stored_counts(store) == {"app-a": 2, "app-b": 1}
    store.close()


def test_hash_collision_within_one_append_keeps_both(engine: str, tmp_path: Path) -> None:
    store = open_store(engine, tmp_path)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert store.append(forged("app-a", [a, b, a], -7), ZONES).tolist() == [True, True, False]
    assert store.count("app-a") == 2
    store.close()
    reopened = open_store(engine, tmp_path)
    assert reopened.append(forged("app-a", [b, a], -7), ZONES).tolist() == [False, False]
    assert reopened.count("app-a") == 2
    reopened.close()


def test_validate_events_keeps_the_first_copy_in_a_batch() -> None:
    e = POOL[1]
    batch = validate_events([e, POOL[2], e, e], "app-a", NOW)
    assert batch.table.num_rows == 2 and batch.duplicates_in_batch == 2
    assert batch.accepted == 4
    assert batch.table["event_id"].to_pylist() == [e["event_id"], POOL[2]["event_id"]]


def test_event_hashes_depend_on_app_and_id() -> None:
    ids = [uuid.UUID(int=i) for i in range(1, 6)]
    raw = b"".join(u.bytes for u in ids)
    a, b = event_hashes("app-a", raw), event_hashes("app-b", raw)
    assert a.dtype == np.int64 and len(a) == 5
    assert len(set(a.tolist())) == 5 and not set(a.tolist()) & set(b.tolist())
    assert event_hashes("app-a", raw).tolist() == a.tolist()


# --- HashIndex -----------------------------------------------------------------------------


def arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_hash_index_empty_and_initial() -> None:
    empty = HashIndex()
    assert len(empty) == 0
    assert empty.seen(arr(1, 2)).tolist() == [False, False]
    index = HashIndex(arr(5, -3, 5, 9))
    assert len(index) == 3
    extremes = np.iinfo(np.int64)
    probe = arr(-3, 4, 5, 9, 10, extremes.min, extremes.max)
    assert index.seen(probe).tolist() == [True, False, True, True, False, False, False]


def test_hash_index_add_and_merge_across_threshold() -> None:
    index = HashIndex(arr(100, 200), merge_every=3)
    index.add(arr(1, 2))  # below the threshold: held in the recent set
    assert index.seen(arr(1, 2, 3, 100, 200)).tolist() == [True, True, False, True, True]
    index.add(arr(3))  # reaches the threshold: merged into the sorted part
    assert index.seen(arr(1, 2, 3, 100, 200, 4)).tolist() == [True] * 5 + [False]
    assert len(index) == 5
    index.add(arr(-50, 7, 8, 9))  # merged again, in one go
    index.add(arr(60))  # and one left in the recent set
    expected = [1, 2, 3, 100, 200, -50, 7, 8, 9, 60]
    assert index.seen(np.array(expected, np.int64)).all()
    assert not index.seen(arr(0, 4, 5, 6, 10, 61, -49)).any()
    assert len(index) == len(expected)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20),
    adds=st.lists(st.lists(st.integers(-20, 20), max_size=6), max_size=8),
    merge_every=st.integers(1, 5),
)
def test_hash_index_matches_a_set(
    initial: list[int], adds: list[list[int]], merge_every: int
) -> None:
    index = HashIndex(np.array(initial, np.int64), merge_every=merge_every)
    model = set(initial)
    probe = np.array([*range(-25, 26), *initial], np.int64)
    for values in adds:
        fresh = sorted(set(values) - model)  # the store adds only hashes it has not seen
        index.add(np.array(fresh, np.int64))
        model.update(fresh)
        assert index.seen(probe).tolist() == [int(p) in model for p in probe]
        assert len(index) == len(model)


@pytest.mark.parametrize("rows", [0, 1])
def test_append_of_nothing_new(engine: str, tmp_path: Path, rows: int) -> None:
    store = open_store(engine, tmp_path)
    table = table_of("app-a", [3] * rows)
    assert store.append(table, ZONES).tolist() == [True] * rows
    assert store.append(table, ZONES).tolist() == [False] * rows
    assert store.count("app-a") == rows
    store.close()


def test_validate_events_keeps_colliding_events(monkeypatch: pytest.MonkeyPatch) -> None:
    import liucun.events.batch as batch_module

    def constant(app_id: str, uuid_bytes: bytes) -> np.ndarray:
        return np.zeros(len(uuid_bytes) // 16, dtype=np.int64)

    monkeypatch.setattr(batch_module, "event_hashes", constant)
    a, b = POOL[1], POOL[2]
    batch = validate_events([a, b, a], "app-a", NOW)
    assert batch.table["event_id"].to_pylist() == [a["event_id"], b["event_id"]]
    assert batch.duplicates_in_batch == 1


def test_a_store_without_person_keys_gets_them_on_open(tmp_path: Path) -> None:
    """A file written before person keys existed is given them, and counts as a new one does."""
    path = str(tmp_path / "events.duckdb")
    raw = [
        {"event_id": str(uuid.uuid4()), "event": "app_open", "anonymous_id": "dev-1", "ts": t}
        for t in ("2026-11-18T01:00:00Z", "2026-11-19T01:00:00Z")
    ]
    raw.append(
        {
            "event_id": str(uuid.uuid4()),
            "event": "identify",
            "anonymous_id": "dev-1",
            "user_id": "u-1",
            "ts": "2026-11-19T02:00:00Z",
        }
    )
    raw.append(
        {
            "event_id": str(uuid.uuid4()),
            "event": "app_open",
            "user_id": "u-1",
            "ts": NOW.isoformat(),
        }
    )
    store = DuckDBEventStore(path)
    store.append(validate_events(raw, "app-a", NOW).table, ZONES)
    store.add_users("app-a", pa.table({"user_id": ["u-1"], "created_at": [NOW]}))
    days_sql = (
        f"SELECT person_id, day FROM ({person_days_sql(store.dialect, '$app')}) t ORDER BY day"
    )
    before = store.query(days_sql, {"app": "app-a"}).to_pylist()
    store.close()

    con = duckdb.connect(path)
    for table, key, _ in PERSON_KEY_COLUMNS:
        con.execute(f"ALTER TABLE {table} DROP COLUMN {key}")
    con.close()

    store = DuckDBEventStore(path)
    for table, key, source in PERSON_KEY_COLUMNS:
        rows = store.query(f"SELECT {source} AS id, {key} AS k FROM {table}").to_pylist()
        assert rows and all(r["k"] == id_key(r["id"]) for r in rows)
    assert store.query(days_sql, {"app": "app-a"}).to_pylist() == before
    # one person over three days: the anonymous days count under the user
    assert {r["person_id"] for r in before} == {id_key("u-1")} and len(before) == 3
    # and new events go in beside the upgraded rows
    more = [
        {
            "event_id": str(uuid.uuid4()),
            "event": "app_open",
            "anonymous_id": "dev-1",
            "ts": "2026-11-20T01:00:00Z",
        }
    ]
    store.append(validate_events(more, "app-a", NOW).table, ZONES)
    assert store.count("app-a") == 5
    store.close()
