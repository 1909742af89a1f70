"""Load performance: first-screen load times, the share within target, and how load relates to
coming back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.funnel import utc_bounds
from liucun.warehouse.queries import event_person, event_person_join
from liucun.warehouse.store import EventStore

# The seeds' first-screen target: at most 2 s.
TARGET_MS = 2_000
# Days after a visit in which a person must come back to count as returned.
RETURN_DAYS = 7
# Load buckets in whole seconds; the last one is open-ended.
BUCKETS = 5
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class LoadStats:
    """Loads (events with `load_ms`) of one group: count, median, 90th percentile, and the
    share of loads within the target."""

    group: str | None
    loads: int
    median_ms: float
    p90_ms: float
    within_target: float


@dataclass(frozen=True)
class LoadAndReturn:
    """Visit-days whose mean load fell in [low_s, high_s) seconds (high_s None: and above):
    how many, how many were not followed by a visit within 7 days, that rate and its 95%
    Wilson interval."""

    low_s: int
    high_s: int | None
    visit_days: int
    not_returned: int
    rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Performance:
    target_ms: int
    overall: LoadStats
    by_platform: list[LoadStats]
    by_page: list[LoadStats]
    by_device: list[LoadStats]
    load_and_return: list[LoadAndReturn]


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _load_stats(store: EventStore, scope: Scope, group: str | None, limit: int) -> list[LoadStats]:
    d = store.dialect
    key = group or "CASE WHEN 1 = 0 THEN event END"
    ts_first, ts_end = utc_bounds(scope)
    sql = f"""
    SELECT {key} AS grp, count(*) AS loads, {d.median("load_ms")} AS median_ms,
           {d.quantile("load_ms", 0.9)} AS p90_ms,
           sum(CASE WHEN load_ms <= {TARGET_MS} THEN 1 ELSE 0 END) AS within
    FROM events
    WHERE app_id = {d.param("app")} AND load_ms IS NOT NULL AND load_ms >= 0
      AND ts >= {d.param("ts_first")} AND ts < {d.param("ts_end")}
    GROUP BY {key} ORDER BY loads DESC LIMIT {int(limit)}
    """
    rows = store.query(sql, scope.sql_params(ts_first=ts_first, ts_end=ts_end)).to_pylist()
    return [
        LoadStats(
            r["grp"],
            int(r["loads"]),
            float(r["median_ms"]),
            float(r["p90_ms"]),
            int(r["within"]) / int(r["loads"]),
        )
        for r in rows
    ]


def load_and_return(store: EventStore, scope: Scope) -> list[LoadAndReturn]:
    """Per load bucket, the visit-days not followed by a visit within 7 days.

    A visit-day is a person's app-local day with at least one load, up to 7 days before the
    range's end (so that the week after it is known); its load is the mean `load_ms` that
    day. Returned means a visit (`app_open`) on one of the 7 following days.
    """
    d = store.dialect
    day = d.local_date("e.ts", d.quote(scope.timezone))
    last_counted = scope.last_day - timedelta(days=RETURN_DAYS)
    # the day's mean load from its exact sum and count: a float mean a hair under a whole
    # second on one engine and over it on another would put the day in different buckets
    bucket = f"least(CAST(floor(l.load_sum / (l.loads * 1000.0)) AS BIGINT), {BUCKETS})"
    sql = f"""
    WITH l AS (
        SELECT {event_person()} AS person_id, {day} AS day,
               sum(e.load_ms) AS load_sum, count(*) AS loads
        FROM events e
        {event_person_join(d, d.param("app"))}
        WHERE e.app_id = {d.param("app")} AND e.load_ms IS NOT NULL AND e.load_ms >= 0
          AND {day} BETWEEN {d.param("first")} AND {d.param("last_counted")}
        GROUP BY {event_person()}, {day}
    ),
    v AS (SELECT person_id, day FROM ({active_days_sql(store, scope.timezone, "visit", "v")}) a),
    r AS (
        SELECT l.person_id, l.day, {bucket} AS bucket,
               max(CASE WHEN v.day IS NULL THEN 0 ELSE 1 END) AS returned
        FROM l LEFT JOIN v ON v.person_id = l.person_id AND v.day > l.day
                          AND v.day <= {d.add_days("l.day", str(RETURN_DAYS))}
        GROUP BY l.person_id, l.day, {bucket}
    )
    SELECT bucket, count(*) AS n, sum(1 - returned) AS gone FROM r GROUP BY bucket
    """
    if last_counted < scope.first_day:
        return []
    params = scope.sql_params(last_counted=last_counted)
    found = {int(r["bucket"]): r for r in store.query(sql, params).to_pylist()}
    out = []
    for b in range(BUCKETS + 1):
        r = found.get(b, {"n": 0, "gone": 0})
        n, gone = int(r["n"]), int(r["gone"] or 0)
        low, high = wilson(gone, n)
        out.append(
            LoadAndReturn(
                b, b + 1 if b < BUCKETS else None, n, gone, gone / n if n else 0.0, low, high
            )
        )
    return out


def performance(store: EventStore, scope: Scope, limit: int = 20) -> Performance:
    """First-screen loads overall and by platform, page and device (`properties.device`),
    and load against return (see `load_and_return`)."""
    overall = _load_stats(store, scope, None, 1)
    empty = LoadStats(None, 0, 0.0, 0.0, 0.0)
    device = store.dialect.json_text("properties", "device")
    return Performance(
        target_ms=TARGET_MS,
        overall=overall[0] if overall else empty,
        by_platform=_load_stats(store, scope, "platform", limit),
        by_page=_load_stats(store, scope, "page", limit),
        by_device=_load_stats(store, scope, device, limit),
        load_and_return=load_and_return(store, scope),
    )
