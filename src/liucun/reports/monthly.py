"""The monthly evaluation (seeds 000: "建立月度评估机制,动态调整留存手段与福利力度"): the
month's KPIs against their targets and the month before, what changed and where, each
campaign's lift, the month's alerts, and the playbook adjustments the seeds' rules call for.

KPIs (definitions in docs/metrics.md and docs/report.md):
- MAU, mean daily UV, MAU ÷ mean daily UV, weekly average revisits and churn rate: the
  `mau-report` metric of the month (activity = `visit`).
- D1/D7/D30: over the month's daily cohorts of first-time visitors, returners on day k ÷
  cohort size, summed over the cohorts whose day k is in the data (so a cohort of the 30th
  counts towards D1 once the 31st is in, towards D30 only a month later).
- loads within 2 s: the share of the month's first-screen loads at or under the target.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.analytics.activity_source import Scope, latest_day
from liucun.analytics.funnel import utc_bounds
from liucun.analytics.mau_report import MauReport, Targets, mau_report
from liucun.analytics.params import VISIT, Period, RetentionType
from liucun.analytics.performance import performance
from liucun.analytics.retention import RetentionQuery, retention
from liucun.lifecycle.alert_store import StoredAlert, list_alerts
from liucun.loyalty.members import as_utc
from liucun.playbook.schema import Playbook
from liucun.playbook.store import playbook_in_force
from liucun.reports.advice import advise
from liucun.reports.changes import (
    group_changes,
    month_scope,
    previous_month,
    segment_changes,
    worst_pages,
)
from liucun.reports.model import Kpi, MonthlyReport, ReportError
from liucun.state.apps import App
from liucun.warehouse.store import EventStore

RETENTION_DAYS = (1, 7, 30)


def retention_rates(store: EventStore, month: Scope, data_end: date) -> dict[int, float | None]:
    """D1/D7/D30 of the month's first-time cohorts (module docstring)."""
    scope = Scope(month.app_id, month.timezone, month.first_day, data_end)
    query = RetentionQuery(
        Period.day, max(RETENTION_DAYS) + 1, RetentionType.first_time, VISIT, VISIT
    )
    cohorts = [c for c in retention(store, scope, query) if c.start <= month.last_day]
    rates: dict[int, float | None] = {}
    for k in RETENTION_DAYS:
        seen = [c for c in cohorts if len(c.counts) > k]
        size = sum(c.size for c in seen)
        rates[k] = sum(c.counts[k] for c in seen) / size if size else None
    return rates


def _daily_uv(store: EventStore, scope: Scope) -> list[tuple[date, int]]:
    from liucun.analytics.activity import activity

    return [(d.day, d.dau) for d in activity(store, scope, VISIT).days]


def _load_share(store: EventStore, scope: Scope) -> float | None:
    overall = performance(store, scope, 1).overall
    return overall.within_target if overall.loads else None


def _kpis(
    now: MauReport,
    before: MauReport,
    rates: tuple[dict[int, Any], dict[int, Any]],
    loads: tuple[float | None, float | None],
    t: Targets,
) -> list[Kpi]:
    def band(value: float | None, low: float, high: float) -> str:
        if value is None:
            return "no data"
        return "below" if value < low else "above" if value > high else "ok"

    inf = float("inf")
    kpis = [
        Kpi("mau", now.mau, before.mau, None, "info"),
        Kpi("mean_daily_uv", now.mean_daily_uv, before.mean_daily_uv, None, "info"),
        Kpi(
            "mau_to_daily_uv",
            now.mau_to_daily_uv,
            before.mau_to_daily_uv,
            f"{t.mau_ratio_low:g}–{t.mau_ratio_high:g}",
            band(now.mau_to_daily_uv, t.mau_ratio_low, t.mau_ratio_high),
        ),
        Kpi(
            "weekly_revisits",
            now.weekly_revisits,
            before.weekly_revisits,
            f"≥ {t.weekly_revisits_min:g}",
            band(now.weekly_revisits, t.weekly_revisits_min, inf),
        ),
        Kpi(
            "churn_rate",
            now.churn_rate,
            before.churn_rate,
            f"≤ {t.churn_rate_max:.0%}",
            band(now.churn_rate, -inf, t.churn_rate_max),
        ),
    ]
    for k in RETENTION_DAYS:
        kpis.append(Kpi(f"d{k}", rates[0][k], rates[1][k], None, "info"))
    kpis.append(Kpi("loads_within_2s", loads[0], loads[1], None, "info"))
    return kpis


def targets_of(playbook: Playbook) -> Targets:
    a = playbook.alerts
    return Targets(weekly_revisits_min=a.weekly_revisits.min, churn_rate_max=a.churn_rate.max)


def _month_alerts(engine: sa.Engine, app_id: str, month: Scope) -> list[StoredAlert]:
    every = list_alerts(engine, app_id, status="all", limit=10_000)
    return [a for a in every if month.first_day <= a.as_of <= month.last_day]


def _campaign_results(
    store: EventStore, engine: sa.Engine, app: App, month: Scope
) -> list[dict[str, Any]]:
    """Each campaign launched by the month's end and not ended before it began, with its
    lift against holdout on each metric as of the month's end (engage/results.py)."""
    from liucun.engage.campaigns import list_campaigns
    from liucun.engage.results import campaign_results

    end = utc_bounds(month)[1]
    rows: list[dict[str, Any]] = []
    for c in list_campaigns(engine, app.app_id):
        if c.launched_at is None or as_utc(c.launched_at) >= end:
            continue
        if c.ends_on is not None and c.ends_on < month.first_day:
            continue
        results = campaign_results(store, engine, app, c.campaign_id, min(end, utc_now()))
        for metric, lift in results.lifts.items():
            ci = lift.relative_ci
            rows.append(
                {
                    "campaign_id": c.campaign_id,
                    "name": c.name,
                    "metric": metric,
                    "treatment": results.users["treatment"],
                    "holdout": results.users["holdout"],
                    "lift": lift.relative,
                    "ci_low": ci[0] if ci else None,
                    "ci_high": ci[1] if ci else None,
                    "p_value": lift.p_value,
                    "srm": results.srm.as_json(),
                }
            )
    return rows


def utc_now() -> datetime:
    return datetime.now(UTC)


def monthly_report(store: EventStore, engine: sa.Engine, app: App, month: date) -> MonthlyReport:
    """The evaluation of `app`'s calendar month starting `month` (app-local), counted up to
    its last day or the latest day with data, whichever is first."""
    month = month.replace(day=1)
    data_end = latest_day(store, app.app_id)
    if data_end is None or data_end < month:
        raise ReportError(
            f"app {app.name!r} has no events in or after {month:%Y-%m}: "
            "choose a month with data (`liucun metrics active` shows the days)"
        )
    now = month_scope(app.app_id, app.timezone, month, data_end)
    before = month_scope(app.app_id, app.timezone, previous_month(month))
    playbook = playbook_in_force(engine, app.app_id).playbook
    targets = targets_of(playbook)
    reports = (mau_report(store, now, VISIT, targets), mau_report(store, before, VISIT, targets))
    rates = (retention_rates(store, now, data_end), retention_rates(store, before, data_end))
    loads = (_load_share(store, now), _load_share(store, before))
    rules = playbook.report
    report = MonthlyReport(
        app_id=app.app_id,
        app_name=app.name,
        month=month,
        last_day=now.last_day,
        complete=reports[0].complete,
        kpis=_kpis(reports[0], reports[1], rates, loads, targets),
        daily_uv=_daily_uv(store, now),
        previous_daily_uv=_daily_uv(store, before),
        changes=group_changes(store, now, before, rules.notable_change)
        + segment_changes(engine, app.app_id, now, before, rules.notable_change),
        pages=worst_pages(store, now, before, rules.worst_pages, rules.min_page_sessions),
        alerts=_month_alerts(engine, app.app_id, now),
        campaigns=_campaign_results(store, engine, app, now),
    )
    report.advice = advise(report, playbook, store, engine, app)
    return report


def parse_month(text: str) -> date:
    """`2026-10` as the first day of that month; ReportError otherwise."""
    try:
        year, month = (int(p) for p in text.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise ReportError(f"month {text!r} is not YYYY-MM (e.g. 2026-10)") from None


def month_days(month: date) -> int:
    return ((month.replace(day=28) + timedelta(days=4)).replace(day=1) - month).days
