"""Engage speed: refreshing segments over an app of many users, and deciding a campaign's
messages (consent, caps, quiet hours) for many users.

    python bench/engage.py [--users 500000] [--events-per-user 20] [--days 90] [--runs 5]
                           [--send-users 100000] [--only segments|sends]
                           [--state URL] [--data DIR]

One app (Asia/Shanghai) of `--users` identified users over `--days` days, about
`--events-per-user` events each (visits, page views, orders for a third of them), written
straight into a DuckDB event store (events and their daily rollup, as ingest would leave them:
bulk SQL instead of the HTTP path, which bench/ingest.py times), and a lifecycle label for
every user in the state store (SQLite by default, `--state postgresql://…`).

Timed: the daily `segments` step (`refresh_all`: the playbook's rule tag and three named
segments — `silent_buyers`, `new_users_7d`, `churned_high_value` — evaluated over every user
and their membership changes recorded), on successive as-of days so that users enter and leave;
the first refresh (every member entering) is shown apart. Prints the median of `--runs`;
the goal is under 10 s at 500,000 users.

Then `send_decision_bench` (bench/engage_sends.py): a message decision for each of
`--send-users` users, at noon and at 23:00 (quiet hours: held), median of 3 runs; the goal is
under 10 s at 100,000 users. Asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from liucun.engage.segments import refresh_all
from liucun.state.apps import App, create_app, find_app
from liucun.state.db import open_state
from liucun.state.tables import lifecycle_labels
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.person_keys import id_keys

TZ = "Asia/Shanghai"
GOAL_SECONDS = 10.0
LAST_DAY = date(2026, 3, 31)
KINDS = np.array(["app_open", "page_view", "order_paid", "share"])
KIND_SHARES = np.array([0.40, 0.50, 0.07, 0.03])


def _events(users: int, per_user: int, days: int, rng: np.random.Generator) -> pa.Table:
    """Every user's events: a first day, a last day, and events spread between them."""
    first = rng.integers(0, days, users)
    span = np.minimum(rng.geometric(1 / 20, users), days - first)
    counts = rng.poisson(per_user, users) + 1
    who = np.repeat(np.arange(users), counts)
    day = first[who] + (rng.random(len(who)) * span[who]).astype(np.int64)
    kind = rng.choice(len(KINDS), size=len(who), p=KIND_SHARES)
    buyer = rng.random(users) < 1 / 3
    kind = np.where((kind == 2) & ~buyer[who], 1, kind)
    start = datetime.combine(LAST_DAY - timedelta(days=days - 1), datetime.min.time(), UTC)
    micros = (day * 86_400 + rng.integers(0, 86_400, len(who))) * 1_000_000
    ts = pa.array(
        np.datetime64(start.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]"),
        pa.timestamp("us", tz="UTC"),
    )
    ids = pa.array([f"user-{i}" for i in range(users)], pa.string())
    keys = id_keys(ids)
    return pa.table(
        {
            "user_index": pa.array(who),
            "event": pa.array(KINDS[kind]),
            "ts": ts,
            "amount": pa.array(np.where(kind == 2, rng.integers(100, 50_000, len(who)), 0) / 100),
            "hash": pa.array(rng.integers(-(2**62), 2**62, len(who))),
        }
    ), pa.table({"user_index": pa.array(np.arange(users)), "user_id": ids, "key": keys})


def build(path: Path, users: int, per_user: int, days: int, app_id: str) -> int:
    """The DuckDB store at `path`: events and rollup written by bulk SQL. Returns events."""
    store = DuckDBEventStore(str(path))
    store.close()
    import duckdb

    rng = np.random.default_rng(7)
    events, people = _events(users, per_user, days, rng)
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.register("gen", events)
    con.register("people", people)
    con.execute(
        f"""
        INSERT INTO events BY NAME
        SELECT '{app_id}' AS app_id, gen_random_uuid() AS event_id, g.hash AS event_hash,
               p.user_id, p.user_id AS distinct_id, g.event, g.ts, g.ts AS received_at,
               CASE WHEN g.event = 'page_view' THEN 'pages/home' END AS page,
               CASE WHEN g.event = 'order_paid' THEN CAST(g.amount AS DECIMAL(18, 2)) END
                   AS amount,
               p.key AS distinct_key
        FROM gen g JOIN people p USING (user_index)
        ORDER BY g.ts"""
    )
    con.execute(
        f"""
        INSERT INTO user_days BY NAME
        SELECT app_id, any_value(distinct_id) AS distinct_id, distinct_key,
               CAST(timezone('{TZ}', ts) AS DATE) AS day, count(*) AS events,
               count(*) FILTER (WHERE event = 'app_open') AS visits,
               count(*) FILTER (WHERE event = 'page_view') AS page_views,
               count(*) FILTER (WHERE event = 'order_paid') AS orders,
               CAST(coalesce(sum(amount) FILTER (WHERE event = 'order_paid'), 0)
                    AS DECIMAL(18, 2)) AS amount,
               0 AS duration_ms, min(ts) AS first_ts, max(ts) AS last_ts
        FROM events GROUP BY app_id, distinct_key, day"""
    )
    total = int(con.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
    con.close()
    return total


def label_everyone(engine: sa.Engine, app_id: str, users: int, day: date) -> None:
    """A lifecycle label for every user (as the labelling job would leave them), so the
    churned segment has members; drawn, not computed (bench/churn.py times labelling)."""
    rng = np.random.default_rng(11)
    labels = rng.choice(["new", "active", "silent", "churned"], users, p=[0.1, 0.3, 0.2, 0.4])
    rows = [
        {
            "app_id": app_id,
            "person_id": f"user-{i}",
            "day": day,
            "label": str(label),
            "previous": None,
            "signals": "",
            "playbook_revision": 0,
        }
        for i, label in enumerate(labels)
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(lifecycle_labels.insert(), rows[start : start + 10_000])


def segment_refresh_bench(
    users: int,
    runs: int = 5,
    per_user: int = 20,
    days: int = 90,
    state_url: str | None = None,
    data: Path | None = None,
) -> dict[str, Any]:
    """Build the app, then time `refresh_all` `runs` times on successive days; the figures."""
    work = data or Path(tempfile.mkdtemp(prefix="liucun-engage-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        engine = open_state(state_url or f"sqlite:///{work / 'state.sqlite'}")
        creds = create_app(engine, f"bench-{int(time.time())}", TZ)
        app: App = find_app(engine, creds.app_id)
        began = time.perf_counter()
        events = build(work / "events.duckdb", users, per_user, days, app.app_id)
        label_everyone(engine, app.app_id, users, LAST_DAY - timedelta(days=days))
        built = time.perf_counter() - began
        print(f"  {users:,} users, {events:,} events built in {built:.0f} s")
        store = DuckDBEventStore(str(work / "events.duckdb"))
        times, sizes = [], {}
        first_day = LAST_DAY - timedelta(days=runs)
        for run in range(runs + 1):
            as_of = first_day + timedelta(days=run)
            began = time.perf_counter()
            reports = refresh_all(store, engine, app, as_of, datetime.now(UTC))
            seconds = time.perf_counter() - began
            sizes = {r.segment: (r.size, r.entered, r.left) for r in reports}
            shown = ", ".join(f"{k} {s:,} (+{e:,} −{left:,})" for k, (s, e, left) in sizes.items())
            what = "first refresh" if run == 0 else f"run {run}"
            print(f"  {what} as of {as_of}: {seconds:.2f} s — {shown}")
            if run > 0:
                times.append(seconds)
        store.close()
        engine.dispose()
        return {"users": users, "events": events, "median_seconds": statistics.median(times)}
    finally:
        if data is None:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--state", default=None, help="State store URL (default: SQLite).")
    parser.add_argument("--data", type=Path, default=None, help="Keep the stores here.")
    parser.add_argument("--send-users", type=int, default=100_000)
    parser.add_argument("--only", choices=["segments", "sends"], default=None)
    args = parser.parse_args()
    if args.only != "sends":
        print(f"segment refresh over {args.users:,} users")
        figures = segment_refresh_bench(
            args.users, args.runs, args.events_per_user, args.days, args.state, args.data
        )
        goal = "within" if figures["median_seconds"] < GOAL_SECONDS else "over"
        print(
            f"segment refresh: median {figures['median_seconds']:.2f} s of {args.runs} runs "
            f"({goal} the {GOAL_SECONDS:.0f} s goal)"
        )
    if args.only != "segments":
        from bench.engage_sends import send_decision_bench

        print(f"send decisions over {args.send_users:,} users ({args.state or 'SQLite'})")
        for label, seconds in send_decision_bench(args.send_users, 3, args.state).items():
            goal = "within" if seconds < GOAL_SECONDS else "over"
            print(f"send decision, {label}: {seconds:.2f} s ({goal} the 10 s goal)")


if __name__ == "__main__":
    main()
