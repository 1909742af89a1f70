"""Analytics speed: liucun's metrics beside hand-written ClickHouse-engine SQL and pandas.

    python bench/analytics.py [--users 500000] [--events 10000000] [--days 90] [--runs 5]
                              [--data DIR]

One simulated app (Asia/Shanghai) of about `--events` events: `--users` users over `--days`
days, the simulator's visit rates scaled to hit the event count. The same events go into:

- liucun's DuckDB event store (with its daily rollup), queried through `liucun.analytics`;
- liucun's ClickHouse event store, filled from the DuckDB one by `migrate_events` (its rate is
  printed: bulk ingest into ClickHouse) and queried through the same functions; it runs on chdb
  (the ClickHouse engine, in-process) through the production client, `clickhouse-connect`;
- in the same engine, a MergeTree table ordered by (distinct id, time) and a table of identity
  links, queried by hand-written SQL, as an analyst would on the engine PostHog runs on;
- a pandas DataFrame, computed the way an analyst would in a notebook.

Four figures are compared: DAU, calendar MAU, D1/D7/D30 retention and a 3-step funnel. liucun
computes them with its public functions, each of which computes more than the figure (see
`liucun_metrics`). The chdb and pandas versions count persons, as liucun does (an anonymous id
merged into the user of its earliest identify), and the `same` column says whether all three
gave the same numbers. `chdb-dev` is the chdb query counting devices (distinct ids) instead,
as the issue's reference figures did: the same data, a cheaper and different metric.

For each metric: the median seconds of `--runs` runs (pandas: one run) of liucun on DuckDB
(`duck`) and on ClickHouse (`ch`), the hand-written chdb queries, and the ratios: duck ÷ chdb,
ch ÷ chdb (the ClickHouse path against hand-written SQL on the same engine; the goal is at most
1.2), ch ÷ chdb-dev and pandas ÷ duck. liucun on DuckDB pays for local days and partial sums
once, at ingest (its rollup); on ClickHouse it stores the local day at ingest and sums on read
(a view: see docs/scale-out.md); chdb and pandas find the local days inside the timed query,
from the stored UTC times. The weekly operator set is liucun's four together. `--data DIR`
keeps the generated stores there and reuses them on the next run. Prints figures; asserts
nothing.
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

import clickhouse_connect
import numpy as np
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
from liucun.warehouse.clickhouse_store import ClickHouseEventStore
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.migrate import migrate_events
from liucun.warehouse.schema import EVENT_ARROW_SCHEMA
from liucun.warehouse.store import EventStore

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


def load_chdb(data: Path) -> Any:
    """A client of the engine holding the events as a MergeTree ordered by (distinct id, time)
    and the identity links (chdb allows one engine directory per process: liucun's ClickHouse
    store is a database in the same one)."""
    client = clickhouse_connect.get_client(dsn=f"chdb://{data / 'chdb'}")
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    loaded = data / "chdb-done"
    if not loaded.exists():
        client.command("DROP TABLE IF EXISTS bench.events")
        client.command("DROP TABLE IF EXISTS bench.links")
        client.command(
            "CREATE TABLE bench.events (distinct_id String, event LowCardinality(String), "
            "ts DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY (distinct_id, ts)"
        )
        client.command(
            "INSERT INTO bench.events SELECT distinct_id, event, ts "
            f"FROM file('{data / 'events.parquet'}', Parquet)"
        )
        client.command(
            "CREATE TABLE bench.links (anonymous_id String, user_id String, "
            "ts DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY anonymous_id"
        )
        client.command(
            "INSERT INTO bench.links SELECT ifNull(f.anonymous_id, ''), ifNull(f.user_id, ''), "
            f"f.ts FROM file('{data / 'events.parquet'}', Parquet) AS f WHERE f.event = 'identify'"
        )
        loaded.touch()
    return client


def load_clickhouse_store(data: Path, source: DuckDBEventStore) -> ClickHouseEventStore:
    """liucun's ClickHouse store beside the hand-written tables, filled once by migration."""
    store = ClickHouseEventStore(f"chdb://{data / 'chdb'}?database=liucun")
    loaded = data / "clickhouse-store-done"
    if not loaded.exists():
        store.drop()
        store.close()
        store = ClickHouseEventStore(f"chdb://{data / 'chdb'}?database=liucun")
        total, began = source.count(APP), time.perf_counter()
        copied = [0]

        def progress(rows: int) -> None:
            copied[0] += rows
            print(f"\r  migrated {copied[0]:,} of {total:,} events", end="", flush=True)

        migrate_events(source, store, APP, TZ, progress)
        seconds = time.perf_counter() - began
        print(
            f"\r  migrated {total:,} events to ClickHouse in {seconds:.0f} s "
            f"({total / seconds:,.0f} events/s, batches of 100,000, duplicate lookup included)"
        )
        loaded.write_text(f"{total / seconds:.0f}")
    return store


# --- hand-written ClickHouse-engine SQL -----------------------------------------------------


def chdb_queries(first: date, last: date, persons: bool) -> dict[str, str]:
    """The four metrics as an analyst would write them for the ClickHouse engine: counting
    persons (each anonymous id merged into the user of its earliest identify, as liucun
    does) or, as the issue's reference figures did, devices (distinct ids)."""
    local = f"toDate(ts, '{TZ}')"
    if persons:
        source = (
            "(SELECT if(p.user_id != '', p.user_id, e.distinct_id) AS who, e.event, e.ts "
            "FROM bench.events e LEFT JOIN (SELECT anonymous_id, argMin(user_id, ts) AS user_id "
            "FROM bench.links GROUP BY anonymous_id) p ON p.anonymous_id = e.distinct_id)"
        )
    else:
        source = "(SELECT distinct_id AS who, event, ts FROM bench.events)"
    visits = f"event = 'app_open' AND {local} BETWEEN '{first}' AND '{last}'"
    conditions = ", ".join(f"event = '{e}'" for e in FUNNEL)
    return {
        "DAU": f"SELECT {local} AS d, uniqExact(who) AS n FROM {source} "
        f"WHERE {visits} GROUP BY d ORDER BY d",
        "calendar MAU": f"SELECT toStartOfMonth({local}) AS m, uniqExact(who) AS n "
        f"FROM {source} WHERE {visits} GROUP BY m ORDER BY m",
        "D1/D7/D30 retention": f"""
            WITH a AS (SELECT DISTINCT who, {local} AS d FROM {source}
                       WHERE event = 'app_open' AND {local} <= '{last}'),
                 f AS (SELECT who, min(d) AS fd FROM a GROUP BY who)
            SELECT fd, uniqExact(who) AS d0,
                   countIf(d = fd + 1) AS d1, countIf(d = fd + 7) AS d7,
                   countIf(d = fd + 30) AS d30
            FROM f JOIN a USING who
            WHERE fd BETWEEN '{first}' AND '{last}' GROUP BY fd ORDER BY fd""",
        "3-step funnel": f"""
            SELECT countIf(level >= 1) AS p0, countIf(level >= 2) AS p1,
                   countIf(level >= 3) AS p2 FROM (
                SELECT who, windowFunnel({FUNNEL_WINDOW * 1_000_000})(
                    toUInt64(toUnixTimestamp64Micro(ts)), {conditions}) AS level
                FROM {source} WHERE {local} BETWEEN '{first}' AND '{last}'
                GROUP BY who)""",
    }


def chdb_figures(name: str, table: pa.Table) -> Any:
    """A chdb result in the form `figures` compares."""
    rows = table.to_pylist()
    if name == "DAU":
        return {r["d"]: r["n"] for r in rows}
    if name == "calendar MAU":
        return {r["m"]: r["n"] for r in rows}
    if name == "D1/D7/D30 retention":
        return {(r["fd"], k): r[f"d{k}"] for r in rows for k in RETENTION_DAYS if r[f"d{k}"]}
    return [rows[0][f"p{k}"] for k in range(len(FUNNEL))]


RETENTION_DAYS = (0, 1, 7, 30)


# --- pandas ---------------------------------------------------------------------------------


def pandas_metrics(
    df: pd.DataFrame, links: pd.DataFrame, first: date, last: date
) -> dict[str, Callable[[], Any]]:
    """The four metrics over persons, the way an analyst would in a notebook. Each starts from
    the loaded events (ids as sent, UTC times), as the chdb queries do: it keeps the rows it
    needs, finds their persons and local days, then counts."""
    lo, hi = np.datetime64(first, "D"), np.datetime64(last, "D")

    def persons(rows: pd.DataFrame) -> np.ndarray:
        earliest = links.sort_values("ts").drop_duplicates("anonymous_id")
        person_of = pd.Series(earliest.user_id.to_numpy(), index=earliest.anonymous_id)
        return rows.distinct_id.map(person_of).fillna(rows.distinct_id).to_numpy()

    def local_days(rows: pd.DataFrame) -> np.ndarray:
        return rows.ts.dt.tz_convert(TZ).dt.tz_localize(None).to_numpy().astype("datetime64[D]")

    def visits() -> pd.DataFrame:
        rows = df[df.event == "app_open"]
        return pd.DataFrame({"who": persons(rows), "day": local_days(rows)})

    def by_day(counts: pd.Series) -> dict[Any, int]:
        return {np.datetime64(d, "D").astype(date): int(n) for d, n in counts.items()}

    def dau() -> Any:
        v = visits()
        v = v[(v.day >= lo) & (v.day <= hi)]
        return by_day(v.groupby("day").who.nunique())

    def calendar_mau() -> Any:
        v = visits()
        v = v[(v.day >= lo) & (v.day <= hi)]
        return by_day(v.groupby(v.day.to_numpy().astype("datetime64[M]")).who.nunique())

    def d1_d7_d30() -> Any:
        a = visits()
        a = a[a.day <= hi].drop_duplicates()
        f = a.groupby("who").day.min().rename("fd").reset_index()
        j = a.merge(f, on="who")
        j = j[(j.fd >= lo) & (j.fd <= hi)]
        lag = (j.day - j.fd).dt.days
        out = {}
        for k in RETENTION_DAYS:
            for fd, n in by_day(j[lag == k].groupby("fd").who.nunique()).items():
                out[(fd, k)] = n
        return out

    def funnel_3() -> Any:
        # merge_asof: each attempt's next step event at or after its previous step
        steps = df[df.event.isin(FUNNEL)]
        days = local_days(steps)
        steps = steps[(days >= lo) & (days <= hi)]
        steps = pd.DataFrame({"who": persons(steps), "event": steps.event, "ts": steps.ts})
        attempts = steps[steps.event == FUNNEL[0]][["who", "ts"]].rename(columns={"ts": "t0"})
        attempts = attempts.assign(at=attempts.t0).sort_values("at")
        window = pd.Timedelta(seconds=FUNNEL_WINDOW)
        reached = [attempts.who.nunique()]
        for k, name in enumerate(FUNNEL[1:], start=1):
            nxt = steps[steps.event == name][["who", "ts"]].rename(columns={"ts": f"t{k}"})
            nxt = nxt.assign(at=nxt[f"t{k}"]).sort_values("at")
            attempts = pd.merge_asof(attempts, nxt, on="at", by="who", direction="forward")
            attempts = attempts[attempts[f"t{k}"] <= attempts.t0 + window]
            attempts = attempts.assign(at=attempts[f"t{k}"]).sort_values("at")
            reached.append(attempts.who.nunique())
        return reached

    return {
        "DAU": dau,
        "calendar MAU": calendar_mau,
        "D1/D7/D30 retention": d1_d7_d30,
        "3-step funnel": funnel_3,
    }


# --- liucun ---------------------------------------------------------------------------------


def liucun_metrics(store: EventStore, scope: Scope) -> dict[str, Callable[[], Any]]:
    """liucun's own functions: each computes more than the figure compared (activity: DAU,
    rolling WAU/MAU, PV, visits and calendar months; the MAU report: MAU, daily UV, revisits
    and churn; retention: the whole 31-day matrix; the funnel: step times too)."""
    d30 = RetentionQuery(Period.day, 31, RetentionType.first_time, "visit", "visit")
    q = FunnelQuery(FUNNEL, FUNNEL_WINDOW)
    return {
        "DAU": lambda: activity(store, scope, "visit"),
        "calendar MAU": lambda: mau_report(store, scope, "visit"),
        "D1/D7/D30 retention": lambda: retention(store, scope, d30),
        "3-step funnel": lambda: funnel(store, scope, q),
    }


def liucun_figures(name: str, result: Any) -> Any:
    """The figures of a liucun result that the others compute."""
    if name == "DAU":
        return {d.day: d.dau for d in result.days if d.dau}
    if name == "calendar MAU":
        previous = (result.month - timedelta(days=1)).replace(day=1)
        return {result.month: result.mau, previous: result.previous_mau}
    if name == "D1/D7/D30 retention":
        return {
            (c.start, k): c.counts[k]
            for c in result
            for k in RETENTION_DAYS
            if k < len(c.counts) and c.counts[k]
        }
    return [s.persons for s in result[0].steps]


def agree(name: str, ours: Any, theirs: Any) -> bool:
    """Whether two sides give the same figures (the MAU report covers only its month and the
    one before)."""
    if name == "calendar MAU":
        return all(theirs.get(m) == n for m, n in ours.items())
    return bool(ours == theirs)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The median seconds of `runs` calls of `fn`, and its last result."""
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
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
        clickhouse = load_clickhouse_store(data, store)
        rate = (data / "clickhouse-store-done").read_text()
        print(f"bulk ingest into ClickHouse (migrate_events): {int(rate):,} events/s")
        df = pq.read_table(data / "events.parquet", columns=_PARQUET_COLUMNS).to_pandas()
        links = df[df.event == "identify"][["anonymous_id", "user_id", "ts"]]
        frame = df[["distinct_id", "event", "ts"]]

        ours = liucun_metrics(store, scope)
        on_clickhouse = liucun_metrics(clickhouse, scope)
        persons = chdb_queries(first, last, persons=True)
        devices = chdb_queries(first, last, persons=False)
        notebook = pandas_metrics(frame, links, first, last)
        columns = (
            "duck", "ch", "chdb", "chdb-dev", "pandas",
            "duck÷chdb", "ch÷chdb", "ch÷dev", "pandas÷", "same",
        )  # fmt: skip
        print(f"{'metric':<20} " + " ".join(f"{c:>9}" for c in columns))
        totals = [0.0, 0.0]
        for name, fn in ours.items():
            duck, result = timed(fn, args.runs)
            ch, ch_result = timed(on_clickhouse[name], args.runs)
            engine, table = timed(lambda sql=persons[name]: session.query_arrow(sql), args.runs)
            device, _ = timed(lambda sql=devices[name]: session.query_arrow(sql), args.runs)
            panda, frame_result = timed(notebook[name], 1)
            figures = liucun_figures(name, result)
            same = (
                agree(name, figures, liucun_figures(name, ch_result))
                and agree(name, figures, chdb_figures(name, table))
                and agree(name, figures, frame_result)
            )
            totals[0] += duck
            totals[1] += ch
            print(
                f"{name:<20} {duck:>9.3f} {ch:>9.3f} {engine:>9.3f} {device:>9.3f} "
                f"{panda:>9.2f} {duck / engine:>9.2f} {ch / engine:>9.2f} {ch / device:>9.2f} "
                f"{panda / duck:>9.1f} {'yes' if same else 'NO':>9}"
            )
        for label, total in zip(("DuckDB", "ClickHouse"), totals, strict=True):
            verdict = "meets" if total < GOAL_SET_SECONDS else "misses"
            print(f"weekly operator set on {label}: {total:.3f} s ({verdict} the 1 s goal)")
        store.close()
        clickhouse.close()
        session.close()
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
