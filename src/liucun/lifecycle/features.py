"""Churn-risk features: one row per person as of an app-local day, and the label observed after it.

Everything a feature reads happened on or before the as-of day (app-local, events up to its
last instant), so features at T0 and labels from the days after T0 form an honest time split.
A person is the user id an anonymous id was linked to (else the id itself), as in every metric;
the links known to the store are used, so a visitor who logs in later is one person.

Scope: persons seen by the as-of day who were active (any event) in the 90 days up to it.
Persons away for longer are churned by WeChat's reference definition (We分析: 90 days without a
visit); they belong on a win-back list, not to a risk score, and leaving them out keeps the scan
to the recent rollup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from liucun.analytics.activity_source import latest_day
from liucun.lifecycle.labels import depth_shifts
from liucun.playbook.churn import ChurnRules
from liucun.playbook.load import default_playbook
from liucun.warehouse.queries import (
    event_person,
    event_person_join,
    person_days_sql,
    person_names_sql,
)
from liucun.warehouse.store import EventStore

# persons active within this many days up to the as-of day are scored (WeChat: 90 days away
# is churned)
SCOPE_DAYS = 90
# the seeds' first-screen target: a load above 2 s is slow
SLOW_LOAD_MS = 2_000
# weeks in the visit and dwell trends
TREND_WEEKS = 4
CONSENT_EVENT = "subscribe_consent"
CHECK_IN_EVENT = "check_in"
SHARE_EVENT = "share"


class FeatureError(ValueError):
    """Features or labels cannot be computed as asked; the message says what to change."""


@dataclass(frozen=True)
class Feature:
    name: str
    zh: str
    en: str
    definition: str


# The features, in the model's column order. `zh`/`en` name them in reasons; `definition` is
# what docs/churn-risk.md shows. Windows end on the as-of day and include it.
FEATURES: tuple[Feature, ...] = (
    Feature(
        "recency_days",
        "距上次活跃天数",
        "days since last active",
        "days from the last app-local day with any event to the as-of day (0: active that day)",
    ),
    Feature(
        "tenure_days",
        "使用天数",
        "days since first seen",
        "days from the first-ever app-local day with any event to the as-of day",
    ),
    Feature(
        "active_days_7",
        "近 7 天活跃天数",
        "active days in 7 days",
        "distinct days with any event among the 7 days ending on the as-of day",
    ),
    Feature(
        "active_days_30",
        "近 30 天活跃天数",
        "active days in 30 days",
        "distinct days with any event among the 30 days ending on the as-of day",
    ),
    Feature(
        "active_days_90",
        "近 90 天活跃天数",
        "active days in 90 days",
        "distinct days with any event among the 90 days ending on the as-of day",
    ),
    Feature(
        "visit_gap_days",
        "平均活跃间隔",
        "usual gap between active days",
        "mean days between consecutive active days in the 90 days: (last − first active day) ÷ "
        "(active days − 1); null with a single active day",
    ),
    Feature(
        "recency_to_gap",
        "沉默超出习惯",
        "silence against usual gap",
        "recency_days ÷ visit_gap_days: how many usual gaps the current silence lasts; null "
        "with a single active day",
    ),
    Feature(
        "silence_surprise",
        "沉默反常度",
        "how unusual the silence is",
        "−recency_days × ln(1 − r), r = active_days_90 ÷ (days seen in the 90 days + 1): minus "
        "the log-chance that a person active on a share r of days stays away this long",
    ),
    Feature(
        "visits_30",
        "近 30 天访问次数",
        "visits in 30 days",
        "`app_open` events in the 30 days",
    ),
    Feature(
        "visits_trend",
        "周访问趋势",
        "weekly visits trend",
        "least-squares slope of weekly visits over the 4 weeks (7-day blocks) ending on the "
        "as-of day, in visits per week per week; negative: falling",
    ),
    Feature(
        "page_views_30",
        "近 30 天浏览页数",
        "page views in 30 days",
        "`page_view` events in the 30 days",
    ),
    Feature(
        "dwell_minutes_30",
        "近 30 天停留时长",
        "dwell in 30 days",
        "sum of `duration_ms` (page dwell) over the 30 days, in minutes",
    ),
    Feature(
        "dwell_trend",
        "周停留时长趋势",
        "weekly dwell trend",
        "least-squares slope of weekly dwell minutes over the 4 weeks ending on the as-of day",
    ),
    Feature(
        "orders_90",
        "近 90 天订单数",
        "orders in 90 days",
        "`order_paid` events in the 90 days",
    ),
    Feature(
        "amount_90",
        "近 90 天消费金额",
        "spend in 90 days",
        "sum of `order_paid` amounts in the 90 days, in yuan",
    ),
    Feature(
        "order_recency_days",
        "距上次下单天数",
        "days since last order",
        "days from the last day with an order to the as-of day; 90 when no order in the 90 days",
    ),
    Feature(
        "load_ms_mean",
        "平均首屏加载时长",
        "mean first-screen load",
        "mean `load_ms` of the person's loads in the 90 days (null: no load measured)",
    ),
    Feature(
        "slow_load_share",
        "加载超 2 秒占比",
        "share of loads over 2 s",
        "share of the person's loads in the 90 days above 2,000 ms (null: no load measured)",
    ),
    Feature(
        "check_ins_30",
        "近 30 天签到次数",
        "check-ins in 30 days",
        "`check_in` events in the 30 days",
    ),
    Feature(
        "shares_90",
        "近 90 天分享次数",
        "shares in 90 days",
        "`share` events in the 90 days",
    ),
    Feature(
        "consent_accepted",
        "已同意订阅消息",
        "accepted subscribe messages",
        "1 when the person's latest `subscribe_consent` answer up to the as-of day is accept",
    ),
    Feature(
        "consent_refused",
        "已拒绝订阅消息",
        "refused subscribe messages",
        "1 when that latest answer is reject or ban (both 0: never asked)",
    ),
    Feature(
        "identified",
        "已登录",
        "logged in",
        "1 when the person sent an event with a user id by the as-of day (logged in)",
    ),
    Feature(
        "depth_shift",
        "行为深度信号",
        "depth signals of the playbook",
        "the net shift of the playbook's depth signals that hold for the person on the as-of "
        "day (+1 each towards churned, −1 each towards active; docs/lifecycle.md), e.g. "
        "e-commerce's 'bought before, no order in 30 days'",
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME = {f.name: f for f in FEATURES}


def day_start_utc(day: date, timezone: str) -> datetime:
    """The UTC instant at which app-local `day` starts (DST-aware)."""
    return datetime.combine(day, time(), ZoneInfo(timezone)).astimezone(UTC)


def _rollup_sql(store: EventStore) -> str:
    """Per person active in the scope window: first/last active day, windowed sums and the
    weighted sums behind the weekly trends."""
    d = store.dialect
    p = d.param
    # the 4 weeks before the as-of day weigh -3, -1, 1, 3 (twice the centred week index), so
    # the least-squares slope is the weighted sum over 2 × Σ(k − 1.5)² = 10, in integers
    weight = (
        f"CASE WHEN day > {p('w1')} THEN 3 WHEN day > {p('w2')} THEN 1 "
        f"WHEN day > {p('w3')} THEN -1 WHEN day > {p('w4')} THEN -3 ELSE 0 END"
    )
    in30 = f"CASE WHEN day >= {p('since30')} THEN 1 ELSE 0 END"
    in90 = f"CASE WHEN day >= {p('since90')} THEN 1 ELSE 0 END"
    return f"""
    SELECT person_id, min(day) AS first_day, max(day) AS last_day,
           sum(CASE WHEN day >= {p("since7")} THEN 1 ELSE 0 END) AS active_days_7,
           sum({in30}) AS active_days_30,
           sum({in90}) AS active_days_90,
           min(CASE WHEN day >= {p("since90")} THEN day END) AS first_day_90,
           sum(visits * {in30}) AS visits_30,
           sum(page_views * {in30}) AS page_views_30,
           sum(duration_ms * {in30}) AS dwell_ms_30,
           sum(orders * {in90}) AS orders_90,
           sum(amount * {in90}) AS amount_90,
           max(CASE WHEN orders > 0 AND day >= {p("since90")} THEN day END) AS last_order_day,
           sum(visits * ({weight})) AS visits_w,
           sum(duration_ms * ({weight})) AS dwell_w
    FROM ({person_days_sql(d, p("app"))}) pd
    WHERE day <= {p("as_of")} AND events > 0
    GROUP BY person_id
    HAVING max(day) >= {p("since90")}
    """


def _events_sql(store: EventStore) -> str:
    """Per person, from the events of the scope window: loads, slow loads, check-ins, shares."""
    d = store.dialect
    p = d.param
    load = "CASE WHEN e.load_ms >= 0 THEN e.load_ms END"
    wanted = ", ".join(d.quote(x) for x in (CHECK_IN_EVENT, SHARE_EVENT))
    return f"""
    SELECT {event_person()} AS person_id,
           count({load}) AS loads, sum({load}) AS load_sum,
           sum(CASE WHEN e.load_ms > {SLOW_LOAD_MS} THEN 1 ELSE 0 END) AS slow_loads,
           sum(CASE WHEN e.event = {d.quote(CHECK_IN_EVENT)} AND e.ts >= {p("ts30")}
                    THEN 1 ELSE 0 END) AS check_ins_30,
           sum(CASE WHEN e.event = {d.quote(SHARE_EVENT)} THEN 1 ELSE 0 END) AS shares_90
    FROM events e
    {event_person_join(d, p("app"))}
    WHERE e.app_id = {p("app")} AND e.ts >= {p("ts90")} AND e.ts < {p("ts_end")}
      AND (e.load_ms IS NOT NULL OR e.event IN ({wanted}))
    GROUP BY {event_person()}
    """


def _consent_sql(store: EventStore) -> str:
    """Per person, the latest subscribe-prompt answer up to the as-of day (all history)."""
    d = store.dialect
    p = d.param
    result = d.json_text("e.properties", "result")
    latest = f"(e.ts, {d.uuid_order('e.event_id')})"
    return f"""
    SELECT {event_person()} AS person_id, {d.last_by(result, latest)} AS answer
    FROM events e
    {event_person_join(d, p("app"))}
    WHERE e.app_id = {p("app")} AND e.event = {d.quote(CONSENT_EVENT)}
      AND e.ts < {p("ts_end")}
      AND {result} IN ({d.quote("accept")}, {d.quote("reject")}, {d.quote("ban")})
    GROUP BY {event_person()}
    """


def _identified_sql(store: EventStore) -> str:
    """Persons who sent an event with a user id up to the as-of day."""
    d = store.dialect
    p = d.param
    return f"""
    SELECT DISTINCT {event_person()} AS person_id
    FROM events e
    {event_person_join(d, p("app"))}
    WHERE e.app_id = {p("app")} AND e.user_id IS NOT NULL AND e.ts < {p("ts_end")}
    """


def _params(app_id: str, timezone: str, as_of: date) -> dict[str, Any]:
    def back(days: int) -> date:
        return as_of - timedelta(days=days)

    return {
        "app": app_id,
        "as_of": as_of,
        "since7": back(6),
        "since30": back(29),
        "since90": back(SCOPE_DAYS - 1),
        "w1": back(7),
        "w2": back(14),
        "w3": back(21),
        "w4": back(28),
        "ts30": day_start_utc(back(29), timezone),
        "ts90": day_start_utc(back(SCOPE_DAYS - 1), timezone),
        "ts_end": day_start_utc(as_of + timedelta(days=1), timezone),
    }


def person_names(store: EventStore, app_id: str) -> dict[int, str]:
    """Each person key of the app and its text id (the user id of a linked person)."""
    d = store.dialect
    rows = store.query(person_names_sql(d.param("app")), {"app": app_id}).to_pylist()
    return {int(r["person_id"]): str(r["person"]) for r in rows}


def _by_person(store: EventStore, sql: str, params: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(r["person_id"]): r for r in store.query(sql, params).to_pylist()}


def person_features(
    store: EventStore,
    app_id: str,
    timezone: str,
    as_of: date,
    rules: ChurnRules | None = None,
) -> pa.Table:
    """The churn-risk features (`FEATURES`) of every person active (any event) in the 90 app-local
    days ending on `as_of`, from what was stored about them up to the end of that day; the
    depth signals are those of `rules` (default: the shipped playbook's churn section).

    Columns: `person_key` (the store's person key), `person_id` (its text id), then one column
    per feature in `FEATURE_NAMES` order; rows sorted by `person_id`.
    """
    params = _params(app_id, timezone, as_of)
    base = _by_person(store, _rollup_sql(store), params)
    events = _by_person(store, _events_sql(store), params)
    consent = _by_person(store, _consent_sql(store), params)
    identified = set(_by_person(store, _identified_sql(store), params))
    names = person_names(store, app_id)
    shifts = depth_shifts(store, app_id, timezone, rules or default_playbook().churn, as_of)
    columns: dict[str, list[Any]] = {"person_key": [], "person_id": []}
    columns |= {name: [] for name in FEATURE_NAMES}
    for key in sorted(base, key=lambda k: names.get(k, str(k))):
        r = base[key]
        e = events.get(key, {})
        loads = int(e.get("loads") or 0)
        answer = consent.get(key, {}).get("answer")
        last_order = r["last_order_day"]
        active_90 = int(r["active_days_90"])
        span = (r["last_day"] - r["first_day_90"]).days
        gap = span / (active_90 - 1) if active_90 > 1 else None
        recency = (as_of - r["last_day"]).days
        seen = min((as_of - r["first_day"]).days + 1, SCOPE_DAYS)
        values: dict[str, Any] = {
            "recency_days": (as_of - r["last_day"]).days,
            "tenure_days": (as_of - r["first_day"]).days,
            "active_days_7": int(r["active_days_7"]),
            "active_days_30": int(r["active_days_30"]),
            "active_days_90": int(r["active_days_90"]),
            "visit_gap_days": gap,
            "recency_to_gap": (as_of - r["last_day"]).days / gap if gap else None,
            "silence_surprise": -recency * math.log1p(-active_90 / (seen + 1)),
            "visits_30": int(r["visits_30"]),
            "visits_trend": int(r["visits_w"]) / 10,
            "page_views_30": int(r["page_views_30"]),
            "dwell_minutes_30": int(r["dwell_ms_30"]) / 60_000,
            "dwell_trend": int(r["dwell_w"]) / 10 / 60_000,
            "orders_90": int(r["orders_90"]),
            "amount_90": float(r["amount_90"] or 0),
            "order_recency_days": (as_of - last_order).days if last_order else SCOPE_DAYS,
            "load_ms_mean": int(e["load_sum"]) / loads if loads else None,
            "slow_load_share": int(e["slow_loads"]) / loads if loads else None,
            "check_ins_30": int(e.get("check_ins_30") or 0),
            "shares_90": int(e.get("shares_90") or 0),
            "consent_accepted": int(answer == "accept"),
            "consent_refused": int(answer in ("reject", "ban")),
            "identified": int(key in identified),
            "depth_shift": shifts.get(names.get(key, str(key)), 0),
        }
        columns["person_key"].append(key)
        columns["person_id"].append(names.get(key, str(key)))
        for name in FEATURE_NAMES:
            columns[name].append(values[name])
    return pa.table(
        {
            "person_key": pa.array(columns["person_key"], pa.int64()),
            "person_id": pa.array(columns["person_id"], pa.string()),
            **{name: pa.array(columns[name], pa.float64()) for name in FEATURE_NAMES},
        }
    )


def churn_labels(
    store: EventStore, app_id: str, timezone: str, as_of: date, horizon_days: int
) -> pa.Table:
    """The observed churn label of every person in the scope of `person_features(as_of)`:
    `churned` is 1 when the person has no event on any of the `horizon_days` app-local days
    after `as_of` (as_of + 1 … as_of + horizon_days), else 0.

    Refuses (FeatureError) when the store's data do not reach the end of the horizon: the
    label would not be observed yet. Columns: `person_key`, `person_id`, `churned`; rows sorted
    by `person_id`. `timezone` is the app's, as for `person_features`; the rollup's days are
    cut in it at ingest, so the label reads them as they are.
    """
    if horizon_days < 1:
        raise FeatureError(f"horizon_days must be at least 1, not {horizon_days}")
    until = as_of + timedelta(days=horizon_days)
    last = latest_day(store, app_id)
    if last is None or last < until:
        raise FeatureError(
            f"the label needs events up to {until} ({horizon_days} days after {as_of}); the "
            f"latest day with data is {last}: choose an as-of day of at most "
            f"{(last - timedelta(days=horizon_days)) if last else 'a day with data'}"
        )
    d = store.dialect
    p = d.param
    sql = f"""
    SELECT person_id, max(CASE WHEN day > {p("as_of")} THEN 1 ELSE 0 END) AS came_back
    FROM ({person_days_sql(d, p("app"))}) pd
    WHERE day >= {p("since90")} AND day <= {p("until")} AND events > 0
    GROUP BY person_id
    HAVING min(day) <= {p("as_of")}
    """
    params = {
        "app": app_id,
        "as_of": as_of,
        "until": until,
        "since90": as_of - timedelta(days=SCOPE_DAYS - 1),
    }
    rows = _by_person(store, sql, params)
    names = person_names(store, app_id)
    keys = sorted(rows, key=lambda k: names.get(k, str(k)))
    return pa.table(
        {
            "person_key": pa.array(keys, pa.int64()),
            "person_id": pa.array([names.get(k, str(k)) for k in keys], pa.string()),
            "churned": pa.array([1 - int(rows[k]["came_back"]) for k in keys], pa.int64()),
        }
    )
