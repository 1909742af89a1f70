"""The monthly MAU report the seeds have operators read: MAU against daily UV, weekly revisits,
month-over-month churn, each against its target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pydantic import BaseModel, Field

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.params import VISIT, Period
from liucun.analytics.periods import next_period, period_start
from liucun.warehouse.store import EventStore


class Targets(BaseModel):
    """The seeds' thresholds: MAU should be 15–20× mean daily UV; below 2 weekly revisits,
    raise incentives; above 50% monthly churn, look at the product."""

    mau_ratio_low: float = Field(default=15.0, gt=0)
    mau_ratio_high: float = Field(default=20.0, gt=0)
    weekly_revisits_min: float = Field(default=2.0, ge=0)
    churn_rate_max: float = Field(default=0.5, ge=0, le=1)


@dataclass(frozen=True)
class MauReport:
    """One calendar month (app time zone), counted up to `last_day`.

    mau: persons active in the month. mean_daily_uv: persons active per day, averaged over the
    month's days up to `last_day`. mau_to_daily_uv: mau ÷ mean_daily_uv. weekly_revisits: over
    the complete weeks that start in the month, visits after a person's first in that week,
    per person active that week. churn_rate: the share of last month's active persons who
    are not active this month (provisional while the month is not over: `complete`).
    """

    month: date
    last_day: date
    complete: bool
    mau: int
    mean_daily_uv: float
    mau_to_daily_uv: float | None
    mau_ratio_status: str
    weekly_revisits: float | None
    revisit_weeks: int
    revisits_status: str
    previous_mau: int
    churned: int
    churn_rate: float | None
    churn_status: str


def _band(value: float | None, low: float, high: float) -> str:
    """`below`, `within` or `above` the band [low, high]; `ok` when inside a one-sided one."""
    if value is None:
        return "no data"
    if value < low:
        return "below"
    if value > high:
        return "above"
    return "ok" if low == float("-inf") or high == float("inf") else "within"


def _month_counts(store: EventStore, scope: Scope, event: str, month: date) -> dict[str, int]:
    d = store.dialect
    previous = period_start(month - timedelta(days=1), Period.month)
    sql = f"""
    WITH a AS (
        SELECT person_id, day FROM ({active_days_sql(store, scope.timezone, event, "event")}) t
        WHERE day BETWEEN {d.param("previous")} AND {d.param("last")}
    ),
    cur AS (SELECT DISTINCT person_id FROM a WHERE day >= {d.param("month")}),
    prev AS (SELECT DISTINCT person_id FROM a WHERE day < {d.param("month")})
    SELECT (SELECT count(*) FROM cur) AS mau,
           (SELECT count(*) FROM a WHERE day >= {d.param("month")}) AS person_days,
           (SELECT count(*) FROM prev) AS previous_mau,
           (SELECT count(*) FROM prev WHERE person_id NOT IN (SELECT person_id FROM cur))
               AS churned
    """
    params = scope.sql_params(event=event, month=month, previous=previous)
    row = store.query(sql, params).to_pylist()[0]
    return {k: int(v or 0) for k, v in row.items()}


def _weekly_revisits(store: EventStore, scope: Scope, month: date) -> tuple[float | None, int]:
    """(revisits per active person-week, weeks counted) over the complete weeks starting in
    the month. A revisit is a visit (`app_open`) after the person's first in that week: the
    first visit only says the person is active, the ones after it say they came back."""
    sunday = scope.week_starts_sunday
    week = period_start(month, Period.week, sunday)
    if week < month:
        week = next_period(week, Period.week)
    weeks = []
    while week < next_period(month, Period.month) and week + timedelta(days=6) <= scope.last_day:
        weeks.append(week)
        week = next_period(week, Period.week)
    if not weeks:
        return None, 0
    d = store.dialect
    w = d.period_start("day", Period.week, sunday)
    sql = f"""
    SELECT coalesce(sum(visits - 1), 0) AS revisits, count(*) AS person_weeks FROM (
        SELECT person_id, {w} AS week, sum(n) AS visits
        FROM ({active_days_sql(store, scope.timezone, VISIT, "visit_event")}) t
        WHERE day BETWEEN {d.param("week_first")} AND {d.param("week_last")}
        GROUP BY person_id, {w}
    ) x
    """
    params = scope.sql_params(week_first=weeks[0], week_last=weeks[-1] + timedelta(days=6))
    row = store.query(sql, params).to_pylist()[0]
    person_weeks = int(row["person_weeks"])
    return (int(row["revisits"]) / person_weeks if person_weeks else None), len(weeks)


def mau_report(
    store: EventStore, scope: Scope, event: str, targets: Targets | None = None
) -> MauReport:
    """The report for the calendar month holding the scope's last day, counted up to it."""
    targets = targets or Targets()
    month = period_start(scope.last_day, Period.month)
    month_end = next_period(month, Period.month) - timedelta(days=1)
    counted = Scope(scope.app_id, scope.timezone, month, scope.last_day, scope.week_starts_sunday)
    c = _month_counts(store, counted, event, month)
    mean_uv = c["person_days"] / counted.days
    ratio = c["mau"] / mean_uv if mean_uv else None
    revisits, weeks = _weekly_revisits(store, counted, month)
    churn = c["churned"] / c["previous_mau"] if c["previous_mau"] else None
    return MauReport(
        month=month,
        last_day=scope.last_day,
        complete=scope.last_day >= month_end,
        mau=c["mau"],
        mean_daily_uv=mean_uv,
        mau_to_daily_uv=ratio,
        mau_ratio_status=_band(ratio, targets.mau_ratio_low, targets.mau_ratio_high),
        weekly_revisits=revisits,
        revisit_weeks=weeks,
        revisits_status=_band(revisits, targets.weekly_revisits_min, float("inf")),
        previous_mau=c["previous_mau"],
        churned=c["churned"],
        churn_rate=churn,
        churn_status=_band(churn, float("-inf"), targets.churn_rate_max),
    )
