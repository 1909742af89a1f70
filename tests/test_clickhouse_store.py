"""The ClickHouse event store's own guarantees: each event stored once however many writers
and attempts wrote it, its URLs and its query literals. Runs on the ClickHouse engine in this
process (chdb) through the production client, `clickhouse-connect`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from liucun.analytics.activity import activity
from liucun.analytics.activity_source import Scope
from liucun.events.batch import validate_events
from liucun.state.db import create_state_engine
from liucun.state.locks import postgres_write_lock
from liucun.warehouse.clickhouse_store import ClickHouseEventStore, bind, connect, sql_literal
from liucun.warehouse.store import open_event_store
from tests.reference_stores import clickhouse_url, open_store

APP = "app-a"
ZONES = {APP: "Asia/Shanghai"}


def raw_event(event_id: str, ts: datetime, device: str = "device-1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event": "app_open",
        "anonymous_id": device,
        "ts": ts.isoformat(),
        "properties": {"attempt": "any"},
    }


def attempt(events: list[dict[str, Any]], received: datetime, sent: datetime) -> pa.Table:
    """One delivery of `events`, its times corrected for the client's clock as ingest does."""
    batch = validate_events(events, APP, received, sent_at=sent)
    assert batch.rejected == []
    return batch.table


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    open_store("clickhouse", tmp_path).close()  # the engine stays up for the run
    yield clickhouse_url(tmp_path)


def stored_ids(store: ClickHouseEventStore) -> list[str]:
    return [str(i) for t in store.export_batches(APP) for i in t.column("event_id").to_pylist()]


def test_a_retry_after_the_first_write_is_not_written_again(url: str) -> None:
    first, second = ClickHouseEventStore(url), ClickHouseEventStore(url)
    t0 = datetime(2026, 11, 3, 10, tzinfo=UTC)
    events = [raw_event(str(uuid.uuid4()), t0 + timedelta(minutes=i)) for i in range(3)]
    assert first.append(attempt(events, t0, t0), ZONES).tolist() == [True] * 3
    # the client heard nothing and sent again, through another server, 40 ms later
    retry = attempt(events, t0 + timedelta(seconds=5.04), t0 + timedelta(seconds=5))
    assert second.append(retry, ZONES).tolist() == [False] * 3
    rows = first.query("SELECT count() AS n FROM events", {}).column("n")[0].as_py()
    assert rows == 3
    first.close()
    second.close()


def run_together(*jobs: Callable[[], object]) -> list[object]:
    """Run the jobs in threads released at one moment; their results, errors raised here."""
    start = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_concurrent_attempts_on_two_servers_count_once(url: str, pg_url: str) -> None:
    """A client gave up on a slow server and sent again through another: both attempts are
    written at the same moment, by two stores sharing only ClickHouse and PostgreSQL."""
    state = create_state_engine(pg_url)
    a = ClickHouseEventStore(url, postgres_write_lock(state))
    b = ClickHouseEventStore(url, postgres_write_lock(state))
    # the corrected times differ by the network's jitter, across a month's first instant
    sent = datetime(2026, 11, 30, 23, 59, 59, 999_000, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    events = [raw_event(ids[0], sent), raw_event(ids[1], sent - timedelta(hours=1), "device-2")]
    one = attempt(events, sent + timedelta(microseconds=900), sent)
    other = attempt(events, sent + timedelta(microseconds=1_100), sent)
    assert one.column("ts")[0].as_py().month != other.column("ts")[0].as_py().month

    for _ in range(20):  # many rounds, so that the writers really overlap
        a.clear()
        masks = run_together(lambda: a.append(one, ZONES), lambda: b.append(other, ZONES))
        new = [m.tolist() for m in masks]  # type: ignore[attr-defined]
        # each event new to exactly one of the two writers
        assert sorted(map(sum, zip(*new, strict=True))) == [1, 1], new
        assert a.count(APP) == 2 and b.count(APP) == 2
        assert sorted(stored_ids(a)) == sorted(ids)
        days = a.query(
            "SELECT distinct_id, sum(events) AS events, sum(visits) AS visits FROM user_days "
            "GROUP BY distinct_id ORDER BY distinct_id",
            {},
        ).to_pylist()
        assert [(r["distinct_id"], r["events"], r["visits"]) for r in days] == [
            ("device-1", 1, 1),
            ("device-2", 1, 1),
        ]
    first = one.column("ts")[1].as_py().astimezone(ZoneInfo(ZONES[APP])).date()
    report = activity(a, Scope(APP, ZONES[APP], first, first + timedelta(days=1)), "app_open")
    assert sum(d.dau for d in report.days) == 2 and sum(d.visits for d in report.days) == 2
    a.close()
    b.close()
    state.dispose()


def test_two_writers_with_their_own_batches_and_retries(url: str, pg_url: str) -> None:
    """Two clients, each sending its own batches to its own server and retrying every batch
    (some while the first attempt is still being written, some through the other server):
    every event is stored once and reported new once."""
    state = create_state_engine(pg_url)
    t0 = datetime(2026, 11, 10, 8, tzinfo=UTC)
    clients = {
        name: [
            [
                raw_event(str(uuid.uuid4()), t0 + timedelta(seconds=b * 100 + i), f"{name}-{i % 7}")
                for i in range(250)
            ]
            for b in range(6)
        ]
        for name in ("phone", "tablet")
    }
    stores = [ClickHouseEventStore(url, postgres_write_lock(state)) for _ in range(2)]

    def send(k: int, name: str) -> int:
        total = 0
        for j, events in enumerate(clients[name]):
            for retry in range(3):  # the first attempt and two retries, on alternate servers
                received = t0 + timedelta(minutes=j, milliseconds=retry * 37)
                store = stores[(k + retry) % 2]
                total += int(store.append(attempt(events, received, received), ZONES).sum())
        return total

    counts = run_together(lambda: send(0, "phone"), lambda: send(1, "tablet"))
    expected = {e["event_id"] for batches in clients.values() for b in batches for e in b}
    assert stores[0].count(APP) == len(expected) == 3000
    assert sorted(stored_ids(stores[1])) == sorted(expected)
    assert counts == [1500, 1500]
    for store in stores:
        store.close()
    state.dispose()


def test_urls_select_the_store_and_its_database(tmp_path: Path) -> None:
    client, database = connect("chdb://memory/analytics_1", {})
    assert database == "analytics_1"
    client.close()
    assert connect("chdb://memory", {})[1] == "liucun"
    store = open_event_store(clickhouse_url(tmp_path))
    assert isinstance(store, ClickHouseEventStore)
    store.close()
    with pytest.raises(ValueError, match="database name 'bad-name'"):
        ClickHouseEventStore("chdb://memory/bad-name")
    with pytest.raises(ValueError, match="clickhouse://host:8123/database"):
        open_event_store("mysql://localhost/events")


def test_query_literals_keep_every_character_and_microsecond(url: str) -> None:
    store = ClickHouseEventStore(url)
    texts = ["it's", "back\\slash", "引号'和\\", "%(app)s", "semi; DROP TABLE events"]
    instant = datetime(2026, 3, 8, 7, 0, 0, 123_456, tzinfo=UTC)
    for text in texts:
        got = store.query("SELECT %(t)s AS t", {"t": text}).column("t")[0].as_py()
        assert got == text
    got = store.query("SELECT %(ts)s AS ts", {"ts": instant}).column("ts")[0].as_py()
    assert got == instant
    shanghai = instant.astimezone(datetime.now().astimezone().tzinfo)
    assert store.query("SELECT %(ts)s AS ts", {"ts": shanghai}).column("ts")[0].as_py() == instant
    with pytest.raises(ValueError, match="time zone"):
        sql_literal(datetime(2026, 1, 1))
    with pytest.raises(KeyError, match="'missing'"):
        bind("SELECT %(missing)s", {})
    store.close()
