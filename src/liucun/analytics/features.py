"""Feature use: how often each feature (an event, or a page) is used per active person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.params import Period
from liucun.events.standard import PAGE_VIEW_EVENT
from liucun.warehouse.queries import event_person, event_person_join
from liucun.warehouse.store import EventStore

# Events that are bookkeeping of the app's life, not features anyone uses.
NOT_FEATURES = ("app_open", "app_hide", "page_view", "page_leave", "page_load", "identify", "alias")


@dataclass(frozen=True)
class FeatureUse:
    """One feature in one period: `uses` (events, or views of the page), the `users` who used
    it, the period's `active_users` (doing the activity event) and uses per active user."""

    period: date
    kind: str  # "event" or "page"
    feature: str
    uses: int
    users: int
    active_users: int
    uses_per_active_user: float


def features(
    store: EventStore, scope: Scope, event: str, period: Period, limit: int = 20
) -> list[FeatureUse]:
    """The `limit` most used features over the range, per period (a trend)."""
    d = store.dialect
    sunday = scope.week_starts_sunday
    day = d.local_date("e.ts", d.quote(scope.timezone))
    p = d.period_start(day, period, sunday)
    skip = ", ".join(d.quote(e) for e in NOT_FEATURES)
    sql = f"""
    WITH ev AS (
        SELECT {event_person()} AS person_id, {p} AS period,
               CASE WHEN e.event = {d.param("page_view")} THEN 'page' ELSE 'event' END AS kind,
               CASE WHEN e.event = {d.param("page_view")} THEN e.page ELSE e.event END AS feature
        FROM events e
        {event_person_join(d, d.param("app"))}
        WHERE e.app_id = {d.param("app")}
          AND (e.event NOT IN ({skip}) OR (e.event = {d.param("page_view")} AND e.page IS NOT NULL))
          AND {day} BETWEEN {d.param("first")} AND {d.param("last")}
    ),
    uses AS (
        SELECT period, kind, feature, count(*) AS uses, count(DISTINCT person_id) AS users
        FROM ev GROUP BY period, kind, feature
    ),
    top AS (
        SELECT kind, feature FROM uses GROUP BY kind, feature
        ORDER BY sum(uses) DESC, kind, feature LIMIT {int(limit)}
    ),
    active AS (
        SELECT {d.period_start("day", period, sunday)} AS period,
               count(DISTINCT person_id) AS active_users
        FROM ({active_days_sql(store, scope.timezone, event, "event")}) a
        WHERE day BETWEEN {d.param("first")} AND {d.param("last")}
        GROUP BY {d.period_start("day", period, sunday)}
    )
    SELECT u.period AS period, u.kind AS kind, u.feature AS feature, u.uses AS uses,
           u.users AS users, coalesce(a.active_users, 0) AS active
    FROM uses u JOIN top t ON t.kind = u.kind AND t.feature = u.feature
    LEFT JOIN active a ON a.period = u.period
    ORDER BY u.period, u.uses DESC, u.kind, u.feature
    """
    params = scope.sql_params(event=event, page_view=PAGE_VIEW_EVENT)
    return [
        FeatureUse(
            r["period"],
            r["kind"],
            r["feature"],
            int(r["uses"]),
            int(r["users"]),
            int(r["active"]),
            int(r["uses"]) / int(r["active"]) if r["active"] else 0.0,
        )
        for r in store.query(sql, params).to_pylist()
    ]
