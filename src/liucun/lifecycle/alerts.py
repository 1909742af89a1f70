"""Early warning: the playbook's alert rules checked against the events and churn scores of an
app on a given day, each rule a function that returns the alerts it fires.

App-level rules read the engagement metrics (`liucun.analytics`); user-level rules read each
person's visits and the churn-risk scores. An alert names the period it covers, so that a rule
checked again over the same period fires the same alert, which the store keeps once
(`alert_store`). Definitions, defaults and their seeds: docs/alerts.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from liucun.analytics.activity import activity
from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.funnel import utc_bounds
from liucun.analytics.mau_report import mau_report
from liucun.analytics.params import VISIT
from liucun.playbook.schema import Playbook
from liucun.state.apps import App
from liucun.state.tables import churn_scores
from liucun.warehouse.queries import person_names_sql
from liucun.warehouse.store import EventStore

AlertScope = Literal["app", "user"]
# The earliest day a check may be asked for: mini-programs began in 2017, and the rules look
# months back from the day (near year 1 that arithmetic would leave the calendar).
EARLIEST_DAY = date(2000, 1, 1)
# Ratios compared with a threshold are rounded first, so that a figure exactly on the
# threshold in decimal (a 30% drop) is not pushed across it by binary rounding.
PLACES = 9


@dataclass(frozen=True)
class Alert:
    """One early warning: which rule (`kind`) fired for whom (`scope`: the app, or the user
    `subject`) over which `period`, how serious it is, the numbers that fired it (the
    threshold included), and what to do, in Chinese and English."""

    kind: str
    scope: AlertScope
    subject: str
    period: str
    severity: str
    figures: dict[str, Any] = field(hash=False)
    action_zh: str
    action_en: str
    title_zh: str
    title_en: str


@dataclass(frozen=True)
class Context:
    """What every rule reads: the stores, the app and the day checked."""

    store: EventStore
    state: sa.Engine
    app: App
    as_of: date
    playbook: Playbook


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _month_end(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def last_complete_week(day: date) -> date:
    """The Sunday that ends the last complete Monday-to-Sunday week on or before `day`."""
    return day - timedelta(days=(day.weekday() + 1) % 7)


def weekly_revisits(c: Context) -> list[Alert]:
    """The month's weekly average revisits below the minimum (default 2).

    The month is the calendar month holding the checked day; the figure is the `mau-report`
    one (docs/metrics.md): over the complete weeks that start in the month and end on or
    before the checked day, visits after a person's first in the week per active
    person-week. Silent until the month has a complete week with a visit. Period: the month.
    """
    rule = c.playbook.alerts.weekly_revisits
    month = c.as_of.replace(day=1)
    report = mau_report(c.store, Scope(c.app.app_id, c.app.timezone, month, c.as_of), VISIT)
    revisits = report.weekly_revisits
    if revisits is None or not round(revisits, PLACES) < rule.min:
        return []
    figures = {
        "weekly_revisits": revisits,
        "threshold": rule.min,
        "weeks": report.revisit_weeks,
        "mau": report.mau,
        "through": c.as_of.isoformat(),
    }
    return [
        Alert(
            "weekly_revisits",
            "app",
            "",
            month.strftime("%Y-%m"),
            rule.severity,
            figures,
            rule.action_zh,
            rule.action_en,
            f"周均复访 {revisits:.2f} 次,低于 {rule.min:g} 次",
            f"Weekly revisits {revisits:.2f}, below {rule.min:g}",
        )
    ]


def churn_rate(c: Context) -> list[Alert]:
    """Month-over-month churn above the maximum (default 50%).

    The month is the last complete one: the checked day's month if the day is its last,
    else the month before (a month in progress would count everyone not back yet as
    churned). Churn rate as in `mau-report`: the share of the previous month's active
    persons not active in this month. Period: the month.
    """
    rule = c.playbook.alerts.churn_rate
    month = c.as_of.replace(day=1)
    if c.as_of != _month_end(month):
        month = (month - timedelta(days=1)).replace(day=1)
    last = _month_end(month)
    report = mau_report(c.store, Scope(c.app.app_id, c.app.timezone, month, last), VISIT)
    rate = report.churn_rate
    if rate is None or not round(rate, PLACES) > rule.max:
        return []
    figures = {
        "churn_rate": rate,
        "threshold": rule.max,
        "churned": report.churned,
        "previous_mau": report.previous_mau,
        "mau": report.mau,
    }
    return [
        Alert(
            "churn_rate",
            "app",
            "",
            month.strftime("%Y-%m"),
            rule.severity,
            figures,
            rule.action_zh,
            rule.action_en,
            f"{month:%Y-%m} 流失率 {rate:.1%},超过 {rule.max:.0%}",
            f"Churn in {month:%Y-%m} {rate:.1%}, above {rule.max:.0%}",
        )
    ]


def first_screen_load(c: Context) -> list[Alert]:
    """The `quantile` (default p75) of first-screen loads above `max_ms` (default 2 s).

    Loads are events with `load_ms` (as `performance`), over the last complete week (Monday
    to Sunday, app-local) on or before the checked day; the quantile interpolates between
    the two nearest loads (numpy's default). Silent below `min_loads` loads. Period: the ISO
    week.
    """
    rule = c.playbook.alerts.first_screen_load
    monday = last_complete_week(c.as_of) - timedelta(days=6)
    scope = Scope(c.app.app_id, c.app.timezone, monday, monday + timedelta(days=6))
    d = c.store.dialect
    ts_first, ts_end = utc_bounds(scope)
    sql = f"""
    SELECT count(*) AS loads, {d.quantile("load_ms", rule.quantile)} AS quantile_ms
    FROM events
    WHERE app_id = {d.param("app")} AND load_ms IS NOT NULL AND load_ms >= 0
      AND ts >= {d.param("ts_first")} AND ts < {d.param("ts_end")}
    """
    params = scope.sql_params(ts_first=ts_first, ts_end=ts_end)
    row = c.store.query(sql, params).to_pylist()[0]
    loads = int(row["loads"])
    if loads < rule.min_loads or not float(row["quantile_ms"]) > rule.max_ms:
        return []
    value = float(row["quantile_ms"])
    pct = f"p{rule.quantile * 100:g}"
    figures = {
        f"{pct}_ms": value,
        "quantile": rule.quantile,
        "threshold_ms": rule.max_ms,
        "loads": loads,
        "from": scope.first_day.isoformat(),
        "to": scope.last_day.isoformat(),
    }
    return [
        Alert(
            "first_screen_load",
            "app",
            "",
            iso_week(monday),
            rule.severity,
            figures,
            rule.action_zh,
            rule.action_en,
            f"首屏加载 {pct} {value / 1000:.2f} 秒,超过 {rule.max_ms / 1000:g} 秒",
            f"First-screen load {pct} {value / 1000:.2f} s, above {rule.max_ms / 1000:g} s",
        )
    ]


def promotion_cliff(c: Context) -> list[Alert]:
    """Weekly actives after a promotion at least `max_drop` (default 30%) below its weeks.

    Weeks are 7-day blocks lined up on the promotion's last day. The promotion's weeks are
    the whole blocks inside it, counted back from its last day (a promotion shorter than a
    week: the 7 days ending on its last day); the weeks after are the `after_weeks` (default
    2) blocks following it. Weekly actives of a block are the persons who visited in it (WAU
    on its last day). drop = 1 − (mean weekly actives after) ÷ (mean weekly actives during).
    Checked once the weeks after are over. Period: the promotion and the weeks after it.
    """
    rule = c.playbook.alerts.promotion_cliff
    out = []
    for promo in rule.promotions:
        after_ends = [promo.end + timedelta(days=7 * k) for k in range(1, rule.after_weeks + 1)]
        if after_ends[-1] > c.as_of:
            continue
        weeks = max(1, ((promo.end - promo.start).days + 1) // 7)
        during_ends = [promo.end - timedelta(days=7 * k) for k in reversed(range(weeks))]
        scope = Scope(c.app.app_id, c.app.timezone, during_ends[0], after_ends[-1])
        wau = {d.day: d.wau for d in activity(c.store, scope, VISIT).days}
        during = [wau[day] for day in during_ends]
        after = [wau[day] for day in after_ends]
        during_mean = sum(during) / len(during)
        if during_mean == 0:
            continue
        after_mean = sum(after) / len(after)
        drop = 1 - after_mean / during_mean
        if not round(drop, PLACES) >= rule.max_drop:
            continue
        first_after = promo.end + timedelta(days=1)
        figures = {
            "promotion": promo.name,
            "start": promo.start.isoformat(),
            "end": promo.end.isoformat(),
            "weekly_actives_during": during,
            "weekly_actives_after": after,
            "mean_during": during_mean,
            "mean_after": after_mean,
            "drop": drop,
            "threshold": rule.max_drop,
        }
        out.append(
            Alert(
                "promotion_cliff",
                "app",
                "",
                f"{promo.name} {first_after.isoformat()}/{after_ends[-1].isoformat()}",
                rule.severity,
                figures,
                rule.action_zh,
                rule.action_en,
                f"促销“{promo.name}”结束后周活下降 {drop:.0%}",
                f"Weekly actives fell {drop:.0%} after the promotion “{promo.name}”",
            )
        )
    return out


def _halved(weekly: list[int], recent: int, baseline: int, min_weeks: int, ratio: float) -> bool:
    """Whether visits per 7-day block, newest first, show a loyal user whose recent visits
    halved: active in at least `min_weeks` of the `baseline` blocks after the `recent` ones,
    and the recent weekly mean at most `ratio` × the baseline weekly mean."""
    before = weekly[recent : recent + baseline]
    if sum(1 for v in before if v > 0) < min_weeks:
        return False
    recent_mean = sum(weekly[:recent]) / recent
    return round(recent_mean, PLACES) <= round(ratio * sum(before) / baseline, PLACES)


def loyal_halved(c: Context) -> list[Alert]:
    """A loyal user's visits halved.

    Weeks are the complete Monday-to-Sunday weeks up to the checked day (so that every day of
    a week checks the same weeks). Loyal: visited (`app_open`) in at least `min_active_weeks`
    (default 6) of the `baseline_weeks` (default 8) weeks before the last `recent_weeks`
    (default 2). Halved: visits per week over the recent weeks at most `max_ratio` (default
    50%) of the weekly mean over the baseline weeks. Fires in the first week this holds: the
    same test, a week earlier, did not. Period: the last complete ISO week.
    """
    rule = c.playbook.alerts.loyal_halved
    sunday = last_complete_week(c.as_of)
    recent, baseline = rule.recent_weeks, rule.baseline_weeks
    blocks = recent + baseline + 1  # one more: the test a week earlier
    d = c.store.dialect
    # whole weeks back from the last complete week's Sunday: 0 is that week
    block = d.periods_between("day", d.period_start(d.param("sunday"), "day", False), "week")
    sql = f"""
    WITH v AS (
        SELECT person_id, {block} AS block, sum(n) AS visits
        FROM ({active_days_sql(c.store, c.app.timezone, VISIT, "visit_event")}) t
        WHERE day BETWEEN {d.param("first")} AND {d.param("sunday")}
        GROUP BY person_id, {block}
    ),
    loyal AS (
        SELECT person_id FROM v
        WHERE block BETWEEN {recent} AND {recent + baseline - 1}
        GROUP BY person_id HAVING count(*) >= {rule.min_active_weeks}
    )
    SELECT n.person AS person, v.block AS block, v.visits AS visits
    FROM v JOIN loyal l ON l.person_id = v.person_id
    JOIN ({person_names_sql(d.param("app"))}) n ON n.person_id = v.person_id
    """
    params = {
        "app": c.app.app_id,
        "first": sunday - timedelta(days=7 * blocks - 1),
        "sunday": sunday,
    }
    weekly: dict[str, list[int]] = {}
    for r in c.store.query(sql, params).to_pylist():
        weekly.setdefault(r["person"], [0] * blocks)[int(r["block"])] += int(r["visits"])
    out = []
    for person in sorted(weekly):
        w = weekly[person]
        test = (recent, baseline, rule.min_active_weeks, rule.max_ratio)
        if not _halved(w, *test) or _halved(w[1:], *test):
            continue
        before = w[recent : recent + baseline]
        figures = {
            "recent_weekly_visits": sum(w[:recent]) / recent,
            "baseline_weekly_visits": sum(before) / baseline,
            "active_weeks": sum(1 for v in before if v > 0),
            "recent_weeks": recent,
            "baseline_weeks": baseline,
            "threshold": rule.max_ratio,
        }
        out.append(
            Alert(
                "loyal_halved",
                "user",
                person,
                iso_week(sunday),
                rule.severity,
                figures,
                rule.action_zh,
                rule.action_en,
                f"忠实用户 {person} 访问减半:近 {recent} 周每周 "
                f"{figures['recent_weekly_visits']:.1f} 次,此前 "
                f"{figures['baseline_weekly_visits']:.1f} 次",
                f"Loyal user {person}'s visits halved: {figures['recent_weekly_visits']:.1f} "
                f"a week over {recent} weeks, {figures['baseline_weekly_visits']:.1f} before",
            )
        )
    return out


def risk_crossed(c: Context) -> list[Alert]:
    """A user's churn-risk score reached the high-risk threshold (`risk.high_risk`) from below.

    Read from the latest scores (`churn_scores`) scored as of the checked day or before: risk
    at or above the threshold, and the score it replaced below it. A first score is the
    baseline, not a crossing: the first scoring of an app would otherwise warn about every
    user already at high risk (most of them long gone) one by one.
    Period: the day the score is as of, so that a user who falls back and crosses again is
    warned again.
    """
    rule = c.playbook.alerts.risk_crossed
    threshold = c.playbook.risk.high_risk
    s = churn_scores.c
    query = (
        sa.select(s.person_id, s.as_of, s.risk, s.previous_risk, s.model_id, s.reasons)
        .where(s.app_id == c.app.app_id, s.as_of <= c.as_of, s.risk >= threshold)
        .where(s.previous_risk.is_not(None), s.previous_risk < threshold)
        .order_by(s.person_id)
    )
    with c.state.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for r in rows:
        reasons = [x.get("feature") for x in json.loads(r.reasons or "[]") if isinstance(x, dict)]
        figures = {
            "risk": r.risk,
            "previous_risk": r.previous_risk,
            "threshold": threshold,
            "scored_as_of": r.as_of.isoformat(),
            "model_id": r.model_id,
            "reasons": reasons,
        }
        out.append(
            Alert(
                "risk_crossed",
                "user",
                r.person_id,
                r.as_of.isoformat(),
                rule.severity,
                figures,
                rule.action_zh,
                rule.action_en,
                f"用户 {r.person_id} 流失风险 {r.risk:.2f},达到高风险线 {threshold:g}",
                f"User {r.person_id}'s churn risk {r.risk:.2f} reached the high-risk "
                f"line {threshold:g}",
            )
        )
    return out


Rule = Callable[[Context], list[Alert]]
RULES: dict[str, Rule] = {
    "weekly_revisits": weekly_revisits,
    "churn_rate": churn_rate,
    "first_screen_load": first_screen_load,
    "promotion_cliff": promotion_cliff,
    "loyal_halved": loyal_halved,
    "risk_crossed": risk_crossed,
}


def day_problem(as_of: date, today: date) -> str | None:
    """Why `as_of` cannot be checked (after the app-local `today`, or before 2000), or None."""
    if as_of > today:
        return f"date {as_of} is after today ({today}, app-local): give a past day"
    if as_of < EARLIEST_DAY:
        return f"date {as_of} is before {EARLIEST_DAY}: give a day the app may have data for"
    return None


def check_alerts(
    store: EventStore, state_engine: sa.Engine, app: App, as_of: date, playbook: Playbook
) -> list[Alert]:
    """Every alert that the playbook's enabled rules fire for `app` on the app-local day
    `as_of` (rules in the order of `RULES`)."""
    c = Context(store, state_engine, app, as_of, playbook)
    out: list[Alert] = []
    for kind, rule in RULES.items():
        if getattr(playbook.alerts, kind).enabled:
            out += rule(c)
    return out
