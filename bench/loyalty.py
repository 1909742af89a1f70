"""Loyalty under load: check-ins and point awards per second through HTTP, with the count of
double awards (must be 0), on SQLite and PostgreSQL.

    python -m bench.loyalty [--users 2000] [--threads 16] [--runs 3] [--servers 1]
                            [--only sqlite|postgresql] [--pg postgresql://...]
                            [--client wrk|python]

For each state store `liucun serve` starts on a fresh data directory (and, for PostgreSQL, a
fresh database; `--servers N` starts N processes sharing it), with an app, a signing key and
a playbook giving 10 points a check-in. Each run first makes its users members (one award
each, not timed). Then, each as the median of `--runs` runs:

- check-ins: every member checks in twice (a retry), over `--threads` keep-alive connections
  (spread over the servers), requests shuffled, user tokens minted before the clock starts;
- point awards: `POST /admin/v1/apps/{app}/loyalty/points/award`, every Idempotency-Key sent
  twice;
- the baseline: `GET /healthz` the same number of times through the same clients, the
  server's rate for a request that does no work.

The client is wrk when it is installed (`--client wrk`, the default then), else Python
(`--client python`: `bench.ingest.run_requests`, httpx in `--threads` threads). On a 2-core
machine the Python client measures itself: against a minimal check-in prototype it took about
a core and capped at 750-1,000 requests/s even on /healthz, where wrk took 0.1-0.4 core and
drove 6,500 (one server) to 12,500 (two) /healthz a second. wrk sends the same requests, in
the same order, each once (`bench.wrk_client`, `bench/wrk/replay.lua`: one connection per wrk
thread, one wrk process per server), and times each request as the Python client does.

It prints requests/s, p50 and p99 latency (ms), the ratio to the baseline, and the double
awards counted in the state store afterwards (journal rows beyond one per check-in day or per
key). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from bench.ingest import Request, free_port, liucun_cli, run_requests, wait_until_healthy
from bench.wrk_client import run_wrk, wrk_path

from liucun.loyalty.tokens import mint_user_token
from liucun.state.db import create_state_engine

GOAL_RPS, GOAL_P99_MS = 1000, 50
# how to send a list of requests over n connections: (seconds, latencies in ms)
CLIENTS: dict[str, Callable[[list[str], list[Request], int], tuple[float, list[float]]]] = {
    "wrk": run_wrk,
    "python": run_requests,
}
PLAYBOOK = "version: 1\nloyalty:\n  checkin:\n    points: 10\n"


def _cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([*liucun_cli(), *args], env=env, check=True, capture_output=True)
    return orjson.loads(out.stdout) if "--json" in args else out.stdout.decode()


def prepare(data_dir: Path, state_url: str) -> dict[str, Any]:
    """An app, a signing key and the bench playbook, made with the CLI in `data_dir`'s state."""
    env = {**os.environ, "LIUCUN_DATA_DIR": str(data_dir), "LIUCUN_DAILY_AT": "off"}
    env["LIUCUN_INGEST_WORKERS"] = "0"
    if state_url:
        env["LIUCUN_STATE_STORE"] = state_url
    app = _cli(env, "apps", "create", "bench", "--json")
    key = _cli(env, "loyalty", "signing-key", "create", "--app", "bench", "--json")
    data_dir.mkdir(parents=True, exist_ok=True)
    playbook = data_dir / "playbook.yaml"
    playbook.write_text(PLAYBOOK)
    _cli(env, "playbook", "apply", str(playbook), "--app", "bench")
    return {"app": app, "key": key, "env": env}


@contextmanager
def servers(setup: dict[str, Any], root: Path, count: int) -> Iterator[list[str]]:
    """`count` `liucun serve` processes on the state store of `setup`, each with its own data
    directory (and event store): several servers sharing one PostgreSQL, as in production."""
    procs, urls = [], []
    try:
        for i in range(count):
            env = {**setup["env"]}
            if i:  # the first serves the directory the CLI prepared (SQLite lives there)
                env["LIUCUN_DATA_DIR"] = str(root / f"server-{i}")
            port = free_port()
            proc = subprocess.Popen(
                [*liucun_cli(), "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE
            )
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            wait_until_healthy(urls[-1], proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def checkin_requests(srv: dict[str, Any], users: list[str], rng: random.Random) -> list[Request]:
    now = datetime.now(UTC)
    app_id, key = srv["app"]["app_id"], srv["key"]
    tokens = {u: mint_user_token(app_id, u, key["key_id"], key["secret"], now, 3600) for u in users}
    reqs: list[Request] = [
        ("POST", "/v1/loyalty/checkin", {"Authorization": f"Bearer {tokens[u]}"}, None)
        for u in users
        for _ in range(2)
    ]
    rng.shuffle(reqs)
    return reqs


def award_requests(
    srv: dict[str, Any], users: list[str], rng: random.Random, times: int = 2
) -> list[Request]:
    headers = {
        "Authorization": f"Bearer {srv['app']['admin_token']}",
        "Content-Type": "application/json",
    }
    path = f"/admin/v1/apps/{srv['app']['app_id']}/loyalty/points/award"
    reqs: list[Request] = []
    for u in users:
        body = orjson.dumps({"user_id": u, "points": 5, "reason": "bench"})
        key = str(uuid.uuid4())
        reqs += [("POST", path, {**headers, "Idempotency-Key": key}, body)] * times
    rng.shuffle(reqs)
    return reqs


def double_awards(state_url: str, app_id: str, rule_kind: str) -> tuple[int, int]:
    """(journal earn rows, distinct operations they came from) for `rule_kind` awards."""
    engine = create_state_engine(state_url)
    with engine.connect() as conn:
        rows, keys = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT operation_key) FROM points_journal "
                "WHERE app_id = :a AND kind = 'earn' AND " + rule_kind
            ),
            {"a": app_id},
        ).one()
    engine.dispose()
    return int(rows), int(keys)


def line(label: str, n: int, runs: list[tuple[float, list[float]]], base: float) -> str:
    rates = [n / s for s, _ in runs]
    p50 = statistics.median(statistics.median(lat) for _, lat in runs)
    p99 = statistics.median(statistics.quantiles(lat, n=100)[98] for _, lat in runs)
    rate = statistics.median(rates)
    return (
        f"  {label:<12} {rate:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"{rate / base:5.2f}× baseline"
    )


def bench_store(name: str, state_url: str, args: argparse.Namespace) -> None:
    rng = random.Random(7)
    send = CLIENTS[args.client]
    users, threads = args.users, args.threads
    count = args.servers if state_url else 1  # SQLite: one server owns the file
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = state_url or f"sqlite:///{root / 'data' / 'state.sqlite'}"
        srv = prepare(root / "data", state_url)
        with servers(srv, root, count) as urls:
            base_runs, checkin_runs, award_runs = [], [], []
            for run in range(args.runs):
                ids = [f"r{run}-u{i:05d}" for i in range(users)]
                # members made beforehand (not timed): a check-in of a member the programme
                # already knows, as on every day but a user's first
                send(urls, award_requests(srv, ids, rng, times=1), threads)
                health: list[Request] = [("GET", "/healthz", {}, None)] * (2 * users)
                base_runs.append(send(urls, health, threads))
                checkin_runs.append(send(urls, checkin_requests(srv, ids, rng), threads))
                award_runs.append(send(urls, award_requests(srv, ids, rng), threads))
            base = statistics.median(2 * users / s for s, _ in base_runs)
            app_id = srv["app"]["app_id"]
            print(
                f"{name}: {users} members × 2 requests each, {threads} connections "
                f"({args.client} client), {count} server(s), {args.runs} runs"
            )
            print(f"  {'baseline':<12} {base:8.0f} req/s  (GET /healthz)")
            print(line("check-ins", 2 * users, checkin_runs, base))
            print(line("awards", 2 * users, award_runs, base))
            rows, ops = double_awards(url, app_id, "rule = 'checkin'")
            print(
                f"  check-in awards: {rows} journal rows for {ops} check-ins → {rows - ops} double"
            )
            rows, ops = double_awards(url, app_id, "rule IS NULL")
            print(f"  point awards: {rows} journal rows for {ops} keys → {rows - ops} double")
    print(f"  goal: ≥ {GOAL_RPS} req/s with p99 < {GOAL_P99_MS} ms on PostgreSQL")


@contextmanager
def pg_database(server_url: str) -> Iterator[str]:
    name = "liucun_bench_" + secrets.token_hex(4)
    admin = sa.create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16, help="client connections")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument(
        "--servers", type=int, default=1, help="liucun serve processes on PostgreSQL"
    )
    parser.add_argument(
        "--client",
        choices=list(CLIENTS),
        default="wrk" if wrk_path() else "python",
        help="HTTP client: wrk (the default when installed) or Python threads",
    )
    args = parser.parse_args()
    if args.client == "wrk" and not wrk_path():
        parser.error("--client wrk: wrk is not installed")
    print(f"client: {args.client}" + (f" ({wrk_path()})" if args.client == "wrk" else ""))
    stores: list[tuple[str, Callable[[], Any]]] = [
        ("SQLite", lambda: _nullcontext("")),
        ("PostgreSQL", lambda: pg_database(args.pg)),
    ]
    if args.only:
        stores = [s for s in stores if s[0].lower() == args.only]
    for name, open_db in stores:
        with open_db() as url:
            bench_store(name, url, args)


@contextmanager
def _nullcontext(value: str) -> Iterator[str]:
    yield value


if __name__ == "__main__":
    main()
