"""Analytics speed: liucun's metrics beside hand-written ClickHouse-engine SQL and pandas.

    python bench/analytics.py [--users 500000] [--events 10000000] [--days 90] [--runs 3]
                              [--data DIR]

One simulated app (Asia/Shanghai) of about `--events` events: `--users` users over `--days`
days, the simulator's visit rates scaled to hit the event count. The same events go into:

- liucun's DuckDB event store (with its daily rollup), queried through `liucun.analytics`;
- a chdb (ClickHouse engine, in-process) MergeTree table ordered by (user, time), queried by
  hand-written SQL, as an analyst would on the engine PostHog runs on;
- a pandas DataFrame, computed the way an analyst would in a notebook.

For each metric: the median seconds of `--runs` runs on each side, liucun ÷ chdb and
pandas ÷ liucun. The weekly operator set is activity, the MAU report, D1/D7/D30 retention and a
3-step funnel together. The hand-written queries count devices (distinct ids); liucun counts
persons (anonymous ids merged into users), which costs it a join the others do not pay.
`--data DIR` keeps the generated stores there and reuses them on the next run. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import chdb.session
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from liucun.analytics.activity import activity
from liucun.analytics.activity_source import Scope
from liucun.analytics.funnel import FunnelQuery, funnel
from liucun.analytics.mau_report import mau_report
from liucun.analytics.params import Period, RetentionType
from liucun.analytics.retention import RetentionQuery, retention
from liucun.events.columnar import complete_table
from liucun.sim import SimConfig, simulate
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.schema import EVENT_ARROW_SCHEMA

APP = "bench"
TZ = "Asia/Shanghai"
FUNNEL = ["app_open", "page_view", "order_paid"]
FUNNEL_WINDOW = 86_400
GOAL_SET_SECONDS = 1.0


# --- data -----------------------------------------------------------------------------------


def config_for(users: int, days: int, events: int) -> SimConfig:
    """A config of `users` users whose visit rates are scaled to give about `events` events.

    Events do not grow in proportion to the visit rate (every user visits at least once, and
    churn depends on it), nor to the users of a smaller sample, so the scale is corrected
    against whole trial runs (the simulator makes millions of events a second).
    """
    base = SimConfig(users=users, days=days, timezone=TZ)
    sample_users = users
    scale = 1.0
    for _ in range(4):
        rates = {k: v * scale for k, v in base.visit_rate.items()}
        sample = dataclasses.replace(base, users=sample_users, visit_rate=rates)
        expected = sum(t.num_rows for t in simulate(sample)) * users / sample_users
        if abs(expected / events - 1) < 0.05:
            break
        scale = min(1.0, scale * events / expected)
    return dataclasses.replace(base, visit_rate={k: v * scale for k, v in base.visit_rate.items()})


def build(data: Path, config: SimConfig) -> None:
    """The DuckDB store and a Parquet copy of the events, written once into `data`."""
    data.mkdir(parents=True, exist_ok=True)
    store = DuckDBEventStore(str(data / "events.duckdb"))
    received = datetime.now(UTC)
    began, rows = time.perf_counter(), 0
    schema = pa.schema([f for f in EVENT_ARROW_SCHEMA if f.name in _PARQUET_COLUMNS])
    with pq.ParquetWriter(data / "events.parquet", schema) as parquet:
        for chunk in simulate(config):
            table = complete_table(chunk, APP, received)
            store.append(table, {APP: TZ})
            parquet.write_table(table.select(_PARQUET_COLUMNS))
            rows += table.num_rows
            print(f"\r  stored {rows:,} events", end="", flush=True)
    store.close()
    print(f"\r  stored {rows:,} events in {time.perf_counter() - began:.0f} s")
    (data / "done").write_text(str(rows))


_PARQUET_COLUMNS = ["user_id", "anonymous_id", "distinct_id", "event", "ts"]


def load_chdb(data: Path) -> chdb.session.Session:
    session = chdb.session.Session(str(data / "chdb"))
    session.query("CREATE DATABASE IF NOT EXISTS bench")
    exists = session.query("EXISTS TABLE bench.events", "CSV").data().strip() == "1"
    if not exists:
        session.query(
            "CREATE TABLE bench.events (distinct_id String, event LowCardinality(String), "
            "ts DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY (distinct_id, ts)"
        )
        session.query(
            "INSERT INTO bench.events SELECT distinct_id, event, ts "
            f"FROM file('{data / 'events.parquet'}', Parquet)"
        )
    return session


# --- hand-written ClickHouse-engine SQL -----------------------------------------------------


def chdb_queries(first: date, last: date) -> dict[str, str]:
    local = f"toDate(ts, '{TZ}')"
    visits = f"event = 'app_open' AND {local} BETWEEN '{first}' AND '{last}'"
    conditions = ", ".join(f"event = '{e}'" for e in FUNNEL)
    return {
        "DAU": f"SELECT {local} AS d, uniqExact(distinct_id) FROM bench.events "
        f"WHERE {visits} GROUP BY d ORDER BY d",
        "calendar MAU": f"SELECT toStartOfMonth({local}) AS m, uniqExact(distinct_id) "
        f"FROM bench.events WHERE {visits} GROUP BY m ORDER BY m",
        "D1/D7/D30 retention": f"""
            WITH a AS (SELECT DISTINCT distinct_id, {local} AS d FROM bench.events
                       WHERE event = 'app_open'),
                 f AS (SELECT distinct_id, min(d) AS fd FROM a GROUP BY distinct_id)
            SELECT fd, uniqExact(distinct_id) AS size,
                   countIf(d = fd + 1) AS d1, countIf(d = fd + 7) AS d7,
                   countIf(d = fd + 30) AS d30
            FROM f JOIN a USING distinct_id
            WHERE fd BETWEEN '{first}' AND '{last}' GROUP BY fd ORDER BY fd""",
        "3-step funnel": f"""
            SELECT countIf(level >= 1), countIf(level >= 2), countIf(level >= 3) FROM (
                SELECT distinct_id, windowFunnel({FUNNEL_WINDOW * 1_000_000})(
                    toUInt64(toUnixTimestamp64Micro(ts)), {conditions}) AS level
                FROM bench.events WHERE {local} BETWEEN '{first}' AND '{last}'
                GROUP BY distinct_id)""",
    }


# --- pandas ---------------------------------------------------------------------------------


def pandas_metrics(df: pd.DataFrame, first: date, last: date) -> dict[str, Callable[[], Any]]:
    visits = df[(df.event == "app_open") & (df.day >= first) & (df.day <= last)]

    def dau() -> Any:
        return visits.groupby("day").distinct_id.nunique()

    def calendar_mau() -> Any:
        return visits.groupby(visits.day.map(lambda d: d.replace(day=1))).distinct_id.nunique()

    def d1_d7_d30() -> Any:
        a = df[df.event == "app_open"][["distinct_id", "day"]].drop_duplicates()
        f = a.groupby("distinct_id").day.min().rename("fd").reset_index()
        j = a.merge(f, on="distinct_id")
        j = j[(j.fd >= first) & (j.fd <= last)]
        lag = (pd.to_datetime(j.day) - pd.to_datetime(j.fd)).dt.days
        return {k: j[lag == k].groupby("fd").distinct_id.nunique() for k in (0, 1, 7, 30)}

    def funnel_3() -> Any:
        steps = df[df.event.isin(FUNNEL) & (df.day >= first) & (df.day <= last)]
        steps = steps.sort_values(["distinct_id", "ts"])
        reached = [0, 0, 0]
        window = pd.Timedelta(seconds=FUNNEL_WINDOW)
        for _, g in steps.groupby("distinct_id", sort=False):
            best = 0
            times, names = g.ts.tolist(), g.event.tolist()
            for i, name in enumerate(names):
                if name != FUNNEL[0]:
                    continue
                level, t0 = 1, times[i]
                for t, n in zip(times[i:], names[i:], strict=True):
                    if t - t0 > window:
                        break
                    if level < 3 and n == FUNNEL[level]:
                        level += 1
                best = max(best, level)
            for k in range(best):
                reached[k] += 1
        return reached

    return {
        "DAU": dau,
        "calendar MAU": calendar_mau,
        "D1/D7/D30 retention": d1_d7_d30,
        "3-step funnel": funnel_3,
    }


# --- liucun ---------------------------------------------------------------------------------


def liucun_metrics(store: DuckDBEventStore, scope: Scope) -> dict[str, Callable[[], Any]]:
    d30 = RetentionQuery(Period.day, 31, RetentionType.first_time, "visit", "visit")
    q = FunnelQuery(FUNNEL, FUNNEL_WINDOW)
    return {
        "DAU": lambda: activity(store, scope, "visit"),
        "calendar MAU": lambda: mau_report(store, scope, "visit"),
        "D1/D7/D30 retention": lambda: retention(store, scope, d30),
        "3-step funnel": lambda: funnel(store, scope, q),
    }


def median_seconds(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="keep and reuse the stores here")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="liucun-bench-analytics-"))
    try:
        config = config_for(args.users, args.days, args.events)
        if not (data / "done").exists():
            print(f"simulating {args.users:,} users over {args.days} days")
            build(data, config)
        rows = int((data / "done").read_text())
        first = config.start
        last = config.start + timedelta(days=config.days - 1)
        scope = Scope(APP, TZ, first, last)
        print(f"{rows:,} events, {first} … {last}; median of {args.runs} runs, seconds")

        store = DuckDBEventStore(str(data / "events.duckdb"), read_only=True)
        session = load_chdb(data)
        df = pq.read_table(data / "events.parquet", columns=["distinct_id", "event", "ts"])
        frame = df.to_pandas()
        frame["ts"] = frame.ts.dt.tz_convert(TZ)
        frame["day"] = frame.ts.dt.date

        ours = liucun_metrics(store, scope)
        theirs = chdb_queries(first, last)
        notebook = pandas_metrics(frame, first, last)
        columns = ("liucun", "chdb", "pandas", "÷chdb", "pandas÷")
        print(f"{'metric':<22} " + " ".join(f"{c:>8}" for c in columns))
        total = 0.0
        for name, fn in ours.items():
            mine = median_seconds(fn, args.runs)
            engine = median_seconds(lambda sql=theirs[name]: session.query(sql, "Arrow"), args.runs)
            panda = median_seconds(notebook[name], 1)
            total += mine
            print(
                f"{name:<22} {mine:>8.3f} {engine:>8.3f} {panda:>8.2f} "
                f"{mine / engine:>7.2f} {panda / mine:>8.1f}"
            )
        verdict = "meets" if total < GOAL_SET_SECONDS else "misses"
        print(f"weekly operator set together: {total:.3f} s ({verdict} the 1 s goal)")
        store.close()
        session.close()
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
