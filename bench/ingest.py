"""Ingest throughput: a real `liucun serve` under a real HTTP client, beside its ceilings.

    python bench/ingest.py [--events 200000] [--runs 3] [--threads 8]

Measures, each as the median of `--runs` runs:

- HTTP: events/s posted to `POST /v1/batch` of a `liucun serve` process (own data directory,
  an app made with `liucun apps create --json`) by `--threads` client threads, each with its
  own keep-alive connection, bodies encoded before the clock starts; batches of 100 and 1,000;
  once on the embedded DuckDB store and once on the ClickHouse store (chdb in the server
  process, through `clickhouse-connect`). "+ reactions" counts until the server has also run
  the loyalty reactions it queued for the run's events (its queue is empty again).
- ceiling: the same kind of events, validated beforehand, appended straight into each store
  in batches of 1,000 and 10,000 rows; and HTTP ÷ ceiling.
- where one 1,000-event request spends its time: JSON parse, pydantic validation, the rest of
  `validate_events` (clock, properties, table build), `store.append` (per-stage medians).
- the simulator's events/s (`liucun.sim.simulate`).

Every event has a fresh event_id, so dedup runs (as always) but finds nothing. Prints figures
only; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
from pydantic import TypeAdapter

from liucun.events.batch import validate_events
from liucun.events.model import EventIn
from liucun.sim import SimConfig, simulate
from liucun.warehouse.clickhouse_store import ClickHouseEventStore
from liucun.warehouse.dedup import event_hashes
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.store import EventStore

GOAL = 50_000  # events/s through HTTP with 1,000-event batches
TZ = "Asia/Shanghai"
PAGES = ["pages/home", "pages/list", "pages/item/detail", "pages/cart", "pages/me"]
PLATFORMS = ["wechat", "wechat", "wechat", "alipay", "douyin"]
KINDS = ["app_open", "page_view", "page_view", "page_view", "tap", "tap", "order_paid"]


# --- events ---------------------------------------------------------------------------------


def make_events(n: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """`n` realistic wire events of the last week, each with a fresh event_id."""
    out = []
    for i in range(n):
        kind = rng.choice(KINDS)
        device = rng.randrange(50_000)
        ts = now - timedelta(seconds=rng.randrange(7 * 86_400), milliseconds=rng.randrange(1000))
        e: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "event": kind,
            "anonymous_id": f"dev-{device:06d}",
            "session_id": f"s-{device}-{rng.randrange(30)}",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "platform": rng.choice(PLATFORMS),
            "properties": {"network": "wifi", "screen_width": 375, "screen_height": 812},
        }
        if device % 3 == 0:
            e["user_id"] = f"openid-{device:06d}"
        if kind == "app_open":
            e["scene"] = rng.choice([1001, 1089, 1007, 1047])
            e["load_ms"] = rng.randrange(300, 4000)
        elif kind == "page_view":
            e["page"] = rng.choice(PAGES)
            e["referrer_page"] = rng.choice(PAGES)
        elif kind == "tap":
            e["page"] = rng.choice(PAGES)
            e["x"] = round(rng.uniform(0, 375), 1)
            e["y"] = round(rng.uniform(0, 812), 1)
            e["properties"]["target"] = "buy-button"
        else:
            e["amount"] = round(rng.uniform(1, 500), 2)
            e["properties"] = {"order_id": f"o-{i}-{rng.randrange(10**9)}", "items": 2}
        out.append(e)
    return out


def bodies(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [orjson.dumps({"batch": events[i : i + size]}) for i in range(0, len(events), size)]


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def liucun_cli() -> list[str]:
    exe = Path(sys.executable).with_name("liucun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "liucun.cli"]


def wait_until_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Wait for the server at `url` to answer /healthz; RuntimeError with its stderr if it
    exits or does not answer in time."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"liucun serve did not start: {err}")
        time.sleep(0.1)


@contextmanager
def server(data_dir: Path, event_store: str = "") -> Iterator[tuple[str, str, str]]:
    """(base URL, write key, admin token) of a `liucun serve` process on a fresh data
    directory."""
    env = {**os.environ, "LIUCUN_DATA_DIR": str(data_dir), "LIUCUN_TIMEZONE": TZ}
    if event_store:
        env["LIUCUN_EVENT_STORE"] = event_store
    made = subprocess.run(
        [*liucun_cli(), "apps", "create", "bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    creds = orjson.loads(made.stdout)
    port = free_port()
    proc = subprocess.Popen(
        [*liucun_cli(), "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
        yield url, creds["write_key"], creds["admin_token"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Request = tuple[str, str, dict[str, str], bytes | None]  # method, path, headers, body


def run_requests(
    urls: list[str], requests: list[Request], threads: int
) -> tuple[float, list[float]]:
    """Send every request over `threads` keep-alive clients (opened before the clock starts),
    spread over the servers at `urls`: (seconds, latencies in ms). RuntimeError if any was
    refused."""
    clients = [httpx.Client(base_url=urls[i % len(urls)], timeout=120) for i in range(threads)]
    for c in clients:
        c.get("/healthz")
    lock = threading.Lock()
    queue = iter(requests)
    latencies: list[float] = []
    failures: list[str] = []

    def work(client: httpx.Client) -> None:
        mine = []
        while True:
            with lock:
                req = next(queue, None)
            if req is None:
                break
            method, path, headers, body = req
            began = time.perf_counter()
            r = client.request(method, path, headers=headers, content=body)
            mine.append((time.perf_counter() - began) * 1000)
            if r.status_code >= 400:
                failures.append(f"{r.status_code} {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(c,)) for c in clients]
    began = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - began
    for c in clients:
        c.close()
    if failures:
        raise RuntimeError(f"{len(failures)} requests were refused, e.g. {failures[0]}")
    return seconds, latencies


def drained_after(url: str, admin_token: str, began: float, timeout: float = 1800) -> float:
    """Seconds from `began` until the server's loyalty reactions queue is empty."""
    path = f"{url}/admin/v1/apps/bench/loyalty/pending"
    headers = {"Authorization": f"Bearer {admin_token}"}
    while httpx.get(path, headers=headers).json()["batches"]:
        if time.perf_counter() - began > timeout:
            raise RuntimeError("the reactions queue did not drain")
        time.sleep(0.05)
    return time.perf_counter() - began


def post_all(url: str, write_key: str, payloads: list[bytes], threads: int) -> float:
    """Seconds to post every payload over `threads` keep-alive connections."""
    headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
    requests: list[Request] = [("POST", "/v1/batch", headers, body) for body in payloads]
    return run_requests([url], requests, threads)[0]


# --- the ceiling and the stages -------------------------------------------------------------


def validated(events: list[dict[str, Any]], app_id: str, now: datetime) -> pa.Table:
    chunks = [
        validate_events(events[i : i + 10_000], app_id, now).table
        for i in range(0, len(events), 10_000)
    ]
    return pa.concat_tables(chunks).combine_chunks()


def with_fresh_ids(table: pa.Table, app_id: str) -> pa.Table:
    """`table` with new event ids (and their hashes): the same events, new to any store."""
    ids = [uuid.uuid4() for _ in range(table.num_rows)]
    hashes = event_hashes(app_id, b"".join(u.bytes for u in ids))
    table = table.set_column(1, "event_id", pa.array([str(u) for u in ids], pa.string()))
    return table.set_column(2, "event_hash", pa.array(hashes, pa.int64()))


def store_rate(store: EventStore, table: pa.Table, batch_rows: int) -> float:
    try:
        batches = [table.slice(i, batch_rows) for i in range(0, table.num_rows, batch_rows)]
        began = time.perf_counter()
        for b in batches:
            store.append(b, {"bench": TZ})
        return table.num_rows / (time.perf_counter() - began)
    finally:
        store.close()


# how each store is named for a server in a data directory (empty: the embedded default)
STORES: dict[str, Callable[[Path], str]] = {
    "duckdb": lambda data: "",
    "clickhouse": lambda data: f"chdb://{data / 'chdb'}?database=liucun",
}
# stores opened in this process; chdb keeps one engine directory per process
CEILING_STORES: dict[str, Callable[[Path, str], EventStore]] = {
    "duckdb": lambda work, name: DuckDBEventStore(str(work / f"ceiling-{name}.duckdb")),
    "clickhouse": lambda work, name: ClickHouseEventStore(
        f"chdb://{work / 'ceiling-chdb'}?database=c_{name}"
    ),
}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def sim_rate(users: int, days: int) -> tuple[int, float]:
    began = time.perf_counter()
    rows = sum(chunk.num_rows for chunk in simulate(SimConfig(users=users, days=days)))
    return rows, rows / (time.perf_counter() - began)


# --- the report -----------------------------------------------------------------------------


def rate_line(label: str, rates: list[float]) -> str:
    runs = " ".join(f"{r:>9,.0f}" for r in rates)
    return f"{label:<34} {statistics.median(rates):>10,.0f}   runs: {runs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per HTTP run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="client connections")
    parser.add_argument("--sim-users", type=int, default=20_000)
    parser.add_argument("--sim-days", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(7)
    now = datetime.now(UTC)
    n = args.events
    print(f"{os.cpu_count()} CPUs; {n:,} events a run; {args.runs} runs; {args.threads} clients")

    rates: dict[str, list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="liucun-bench-"))
    try:
        for kind, url_of in STORES.items():
            data = work / f"server-{kind}"
            with server(data, url_of(data)) as (url, key, admin_token):
                warm = make_events(2_000, rng, now)
                post_all(url, key, bodies(warm, 1_000), args.threads)
                drained_after(url, admin_token, time.perf_counter())
                for size in (100, 1_000):
                    label = f"HTTP {kind}, {size:,}-event batches"
                    for _ in range(args.runs):
                        payloads = bodies(make_events(n, rng, now), size)
                        began = time.perf_counter()
                        seconds = post_all(url, key, payloads, args.threads)
                        rates.setdefault(label, []).append(n / seconds)
                        # what the server keeps up with: events stored and reacted to
                        whole = drained_after(url, admin_token, began)
                        rates.setdefault(f"{label} + reactions", []).append(n / whole)

        base = validated(make_events(n, rng, now), "bench", now)
        for kind, opener in CEILING_STORES.items():
            for size in (1_000, 10_000):
                label = f"ceiling {kind}: append, {size:,} rows"
                for run in range(args.runs):
                    store = opener(work, f"{size}_{run}")
                    rates.setdefault(label, []).append(
                        store_rate(store, with_fresh_ids(base, "bench"), size)
                    )

        # one 1,000-event request, stage by stage
        sample = make_events(1_000, rng, now)
        body = orjson.dumps({"batch": sample})
        raw = orjson.loads(body)["batch"]
        adapter = TypeAdapter(list[EventIn])
        repeat = 30
        stages = {
            "orjson parse": median_ms(lambda: orjson.loads(body), repeat),
            "pydantic validation": median_ms(lambda: adapter.validate_python(raw), repeat),
        }
        whole = median_ms(lambda: validate_events(raw, "bench", now), repeat)
        stages["clock, properties, table build"] = whole - stages["pydantic validation"]
        one = validate_events(raw, "bench", now).table
        for kind, opener in CEILING_STORES.items():
            store = opener(work, "stages")
            stages[f"{kind} store.append (1,000 rows)"] = median_ms(
                lambda s=store: s.append(with_fresh_ids(one, "bench"), {"bench": TZ}), repeat
            ) - median_ms(lambda: with_fresh_ids(one, "bench"), repeat)
            store.close()

        sims = [sim_rate(args.sim_users, args.sim_days) for _ in range(args.runs)]
        rates[f"simulator ({sims[0][0]:,} events)"] = [r for _, r in sims]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'events/s':<34} {'median':>10}")
    for label, values in rates.items():
        print(rate_line(label, values))
    for kind in STORES:
        http = statistics.median(rates[f"HTTP {kind}, 1,000-event batches"])
        for size in (1_000, 10_000):
            ceiling = statistics.median(rates[f"ceiling {kind}: append, {size:,} rows"])
            print(f"{f'HTTP {kind} 1,000 ÷ ceiling {size:,}':<34} {http / ceiling:>10.2f}")
        verdict = "meets" if http >= GOAL else "is below"
        print(f"HTTP {kind}, 1,000-event batches, {verdict} the goal of {GOAL:,} events/s")
    print()
    print(f"{'one 1,000-event request':<34} {'ms (median)':>11} {'events/s alone':>15}")
    for stage, ms in stages.items():
        print(f"{stage:<34} {ms:>11.2f} {1_000 / ms * 1000:>15,.0f}")
    total = sum(v for k, v in stages.items() if not k.startswith("clickhouse"))
    print(f"{'sum of stages (DuckDB)':<34} {total:>11.2f} {1_000 / total * 1000:>15,.0f}")


if __name__ == "__main__":
    main()
