"""Activity: DAU, rolling WAU and MAU, calendar-month MAU, page views, visits, stickiness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.warehouse.store import EventStore

# Rolling windows in days: the day itself (DAU), the week to it (WAU), the 30 days to it (MAU).
WINDOWS = {"dau": 1, "wau": 7, "mau": 30}


@dataclass(frozen=True)
class DayActivity:
    """One app-local day.

    dau: persons active that day (daily UV); wau/mau: persons active on any of the 7/30 days
    ending that day; stickiness: dau ÷ mau; page_views: `page_view` events (PV); visits:
    `app_open` events (each a session start).
    """

    day: date
    dau: int
    wau: int
    mau: int
    stickiness: float
    page_views: int
    visits: int


@dataclass(frozen=True)
class MonthActivity:
    """Persons active in a calendar month (app time zone), counting its days in the range;
    `complete` is false when the range covers only part of the month."""

    month: date
    mau: int
    complete: bool


@dataclass(frozen=True)
class ActivityReport:
    first_day: date
    last_day: date
    event: str
    days: list[DayActivity]
    months: list[MonthActivity]


def _rolling_and_monthly_sql(store: EventStore, scope: Scope, event: str) -> str:
    """(w, day, n) rows: per rolling window `w` the change `n` in its count of active persons
    on `day`; and with w = 'month', each calendar month's active persons (`day` its first).

    Each active day `a` of a person covers the days [a, a + W), cut short at the person's next
    active day so that the pieces do not overlap; a day's count is then the number of pieces
    covering it: a running sum of +1 at each piece's start and -1 at its end. One pass over
    the person-days, with no per-day join; the months read the same pass.
    """
    d = store.dialect
    longest = max(WINDOWS.values())
    since = d.add_days(d.param("first"), str(1 - longest))
    windows = " UNION ALL ".join(f"SELECT '{k}' AS w, {v} AS len" for k, v in WINDOWS.items())
    month = d.period_start("day", "month", False)
    return f"""
    WITH a AS {d.materialized} (
        SELECT person_id, day,
               lead({d.nullable("day")}) OVER (PARTITION BY person_id ORDER BY day) AS next_day
        FROM ({active_days_sql(store, scope.timezone, event, "event")}) t
        WHERE day BETWEEN {since} AND {d.param("last")}
    ),
    pieces AS (
        SELECT w.w, a.day AS starts,
               CASE WHEN a.next_day IS NOT NULL
                         AND a.next_day < {d.add_days("a.day", "w.len")}
                    THEN a.next_day ELSE {d.add_days("a.day", "w.len")} END AS ends
        FROM a CROSS JOIN ({windows}) w
    )
    SELECT w, day, sum(delta) AS n FROM (
        SELECT w, starts AS day, 1 AS delta FROM pieces
        UNION ALL
        SELECT w, ends AS day, -1 AS delta FROM pieces
    ) x GROUP BY w, day
    UNION ALL
    SELECT 'month' AS w, {month} AS day, count(DISTINCT person_id) AS n FROM a
    WHERE day >= {d.param("first")} GROUP BY {month}
    """


def _rolling_counts(rows: list[dict[str, Any]], scope: Scope) -> dict[str, list[int]]:
    """Per window, the count of persons active in the window ending on each day of the range:
    the running sums of the changes."""
    out: dict[str, list[int]] = {}
    for w in WINDOWS:
        deltas = {r["day"]: int(r["n"]) for r in rows if r["w"] == w}
        start = min(deltas, default=scope.first_day)
        if start > scope.first_day:
            start = scope.first_day
        span = (scope.last_day - start).days + 1
        running = list(accumulate(deltas.get(start + timedelta(days=i), 0) for i in range(span)))
        out[w] = running[(scope.first_day - start).days :]
    return out


def _daily_totals(store: EventStore, scope: Scope) -> dict[date, tuple[int, int]]:
    d = store.dialect
    sql = f"""
    SELECT day, sum(page_views) AS page_views, sum(visits) AS visits FROM user_days
    WHERE app_id = {d.param("app")} AND day BETWEEN {d.param("first")} AND {d.param("last")}
    GROUP BY day
    """
    rows = store.query(sql, scope.sql_params()).to_pylist()
    return {r["day"]: (int(r["page_views"]), int(r["visits"])) for r in rows}


def _calendar_months(rows: list[dict[str, Any]], scope: Scope) -> list[MonthActivity]:
    found = {r["day"]: int(r["n"]) for r in rows if r["w"] == "month"}
    months = []
    m = scope.first_day.replace(day=1)
    while m <= scope.last_day:
        following = (m + timedelta(days=32)).replace(day=1)
        complete = m >= scope.first_day and following - timedelta(days=1) <= scope.last_day
        months.append(MonthActivity(m, found.get(m, 0), complete))
        m = following
    return months


def activity(store: EventStore, scope: Scope, event: str) -> ActivityReport:
    """Daily activity over the scope's range and MAU per calendar month.

    Active means doing `event` (see `activity_source`); persons, not devices, are counted.
    """
    sql = _rolling_and_monthly_sql(store, scope, event)
    rows = store.query(sql, scope.sql_params(event=event)).to_pylist()
    counts = _rolling_counts(rows, scope)
    totals = _daily_totals(store, scope)
    days = []
    for i in range(scope.days):
        day = scope.first_day + timedelta(days=i)
        dau, wau, mau = counts["dau"][i], counts["wau"][i], counts["mau"][i]
        pv, visits = totals.get(day, (0, 0))
        days.append(DayActivity(day, dau, wau, mau, dau / mau if mau else 0.0, pv, visits))
    months = _calendar_months(rows, scope)
    return ActivityReport(scope.first_day, scope.last_day, event, days, months)
