"""A real `liucun serve` process: acknowledged events survive SIGKILL, retries never duplicate."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from liucun.state.apps import create_app
from liucun.state.db import open_state
from tests.server_helpers import (
    ServerProcess,
    create_app_via_cli,
    export_ids,
    liucun_env,
    make_event,
    server_count,
    server_process,
)

BATCH = 100
MAX_BATCHES = 2_000  # far more than are sent before the kill: the stream is cut mid-way
SENDERS = 2
ACKS_BEFORE_KILL = 8


def post_batch(client: httpx.Client, key: str, batch: list[dict[str, Any]]) -> httpx.Response:
    return client.post(
        "/v1/batch",
        content=orjson.dumps({"batch": batch}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


class Stream:
    """Senders that post batches until the server goes away, recording what was acknowledged."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.lock = threading.Lock()
        self.acked: list[list[dict[str, Any]]] = []
        self.sent: list[list[dict[str, Any]]] = []
        self.errors: list[str] = []
        self.enough = threading.Event()
        self.next = 0

    def _take(self) -> list[dict[str, Any]] | None:
        with self.lock:
            if self.next >= MAX_BATCHES:
                return None
            n, self.next = self.next, self.next + 1
            batch = [make_event(n * BATCH + i) for i in range(BATCH)]
            self.sent.append(batch)
            return batch

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while (batch := self._take()) is not None:
                try:
                    r = post_batch(client, self.key, batch)
                except httpx.TransportError as exc:  # the server was killed
                    with self.lock:
                        self.errors.append(repr(exc))
                    return
                with self.lock:
                    if r.status_code == 200 and r.json()["new"] == BATCH:
                        self.acked.append(batch)
                    else:
                        self.errors.append(f"{r.status_code} {r.text[:200]}")
                    if len(self.acked) >= ACKS_BEFORE_KILL:
                        self.enough.set()


def test_acknowledged_events_survive_sigkill(tmp_path: Path, state_url: str) -> None:
    env = liucun_env(tmp_path, state_url)
    creds = create_app_via_cli(env)
    app_id, key, token = creds["app_id"], creds["write_key"], creds["admin_token"]

    server = ServerProcess(env)
    try:
        server.start()
        stream = Stream(server.url, key)
        senders = [threading.Thread(target=stream.run) for _ in range(SENDERS)]
        for t in senders:
            t.start()
        reached = stream.enough.wait(timeout=60)
        server.kill()  # while both senders have requests in flight
        for t in senders:
            t.join(timeout=60)
        assert reached, f"too few acks before the deadline: {stream.errors[:3]}\n{server.log()}"
        assert not any(t.is_alive() for t in senders)
    finally:
        server.kill()

    acked = {e["event_id"] for batch in stream.acked for e in batch}
    sent = {e["event_id"] for batch in stream.sent for e in batch}
    assert len(acked) >= ACKS_BEFORE_KILL * BATCH
    # the kill cut the stream: some batches were never acknowledged
    assert len(stream.acked) < len(stream.sent) < MAX_BATCHES
    assert all("Error" in e for e in stream.errors), stream.errors[:3]

    with server_process(env) as again:
        ids = export_ids(again.url, app_id, token)
        stored = set(ids)
        assert len(ids) == len(stored), "an event is stored twice"
        assert server_count(again.url, app_id, token) == len(ids)
        assert acked <= stored, f"{len(acked - stored)} acknowledged events were lost"
        assert stored <= sent

        # a client retries everything it sent (acknowledged or not): nothing is stored twice
        acked_batches = {id(b) for b in stream.acked}
        with httpx.Client(base_url=again.url, timeout=30.0) as client:
            for batch in stream.sent:
                r = post_batch(client, key, batch)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["accepted"] == BATCH
                if id(batch) in acked_batches:
                    assert body["new"] == 0 and body["duplicates"] == BATCH
        after = export_ids(again.url, app_id, token)
        assert len(after) == len(set(after)) == len(sent)
        assert set(after) == sent


def test_concurrent_clients_with_overlapping_batches(tmp_path: Path) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    engine = open_state(state_url)
    creds = asdict(create_app(engine, "shop", "Asia/Shanghai"))
    engine.dispose()
    env = liucun_env(tmp_path, state_url)
    events = [make_event(i) for i in range(1_500)]
    # two clients send the same events in different batchings and orders
    plans = [
        [events[i : i + 100] for i in range(0, len(events), 100)],
        [events[i : i + 70] for i in range(0, len(events), 70)][::-1],
    ]
    news: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    with server_process(env) as server:

        def send(plan: list[list[dict[str, Any]]]) -> None:
            with httpx.Client(base_url=server.url, timeout=60.0) as client:
                for batch in plan:
                    r = post_batch(client, creds["write_key"], batch)
                    with lock:
                        if r.status_code != 200 or r.json()["accepted"] != len(batch):
                            failures.append(f"{r.status_code} {r.text[:200]}")
                        else:
                            news.append(r.json()["new"])

        threads = [threading.Thread(target=send, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert not failures, failures[:3]
        # each event was new to exactly one of the two clients
        assert sum(news) == len(events)
        ids = export_ids(server.url, creds["app_id"], creds["admin_token"])
        assert len(ids) == len(set(ids)) == len(events)
        assert set(ids) == {e["event_id"] for e in events}


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_worker_processes_end_with_their_server(tmp_path: Path, how: str) -> None:
    env = liucun_env(tmp_path, LIUCUN_INGEST_WORKERS="2")
    server = ServerProcess(env).start()
    assert server.proc is not None
    workers = _children(server.proc.pid)
    try:
        assert len(workers) >= 2, "the server should run its body-checking workers"
    finally:
        getattr(server, how)()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if _alive(w)], "workers outlived their server"
