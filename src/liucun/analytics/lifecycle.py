"""Lifecycle: per period, the active persons split into new, returning and resurrecting, and
the dormant ones who stopped (PostHog's lifecycle insight)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.params import Period
from liucun.analytics.periods import period_starts, previous_period
from liucun.warehouse.queries import person_days_sql
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class LifecyclePeriod:
    """One period's counts; `dormant` is negative, as PostHog draws it below the axis.

    new: active in the period, and first seen (created) in it. returning: active, and active
    in the previous period too. resurrecting: active, not active in the previous period. A
    person counted new is neither of the other two. dormant: active in the previous period
    and not in this one (counted once, in the period after the last activity).
    """

    start: date
    new: int
    returning: int
    resurrecting: int
    dormant: int


def lifecycle(store: EventStore, scope: Scope, event: str, period: Period) -> list[LifecyclePeriod]:
    """Lifecycle counts for each period overlapping the scope's range.

    A person is born in the period of their creation time when the app imported one
    (`liucun import --users`), else of their earliest event of any kind (PostHog's person
    creation time). The period before the first one is read too, so that a person active in
    both counts as returning, not resurrecting.
    """
    d = store.dialect
    sunday = scope.week_starts_sunday
    starts = period_starts(scope.first_day, scope.last_day, period, sunday)
    lookback = previous_period(starts[0], period, sunday)
    p = d.period_start("day", period, sunday)
    created = d.local_date("created_at", d.quote(scope.timezone))
    gap_before = d.periods_between("prev_p", "p", period)
    gap_after = d.periods_between("p", "next_p", period)
    sql = f"""
    WITH a AS (
        SELECT DISTINCT person_id, {p} AS p
        FROM ({active_days_sql(store, scope.timezone, event, "event")}) t
        WHERE day BETWEEN {d.param("lookback")} AND {d.param("last")}
    ),
    seen AS (
        SELECT person_id, min(day) AS first_day
        FROM ({person_days_sql(d, d.param("app"))}) pd GROUP BY person_id
    ),
    created AS (
        SELECT user_key, min({created}) AS created_day FROM user_created
        WHERE app_id = {d.param("app")} GROUP BY user_key
    ),
    born AS (
        SELECT seen.person_id,
               {d.period_start("coalesce(created.created_day, seen.first_day)", period, sunday)}
                   AS born
        FROM seen LEFT JOIN created ON created.user_key = seen.person_id
    ),
    seq AS (
        SELECT a.person_id, a.p, born.born,
               lag({d.nullable("a.p")}) OVER (PARTITION BY a.person_id ORDER BY a.p) AS prev_p,
               lead({d.nullable("a.p")}) OVER (PARTITION BY a.person_id ORDER BY a.p) AS next_p
        FROM a JOIN born ON born.person_id = a.person_id
    )
    SELECT p,
           sum(CASE WHEN born = p THEN 1 ELSE 0 END) AS new,
           sum(CASE WHEN born <> p AND prev_p IS NOT NULL AND {gap_before} = 1
                    THEN 1 ELSE 0 END) AS returning,
           sum(CASE WHEN born <> p AND (prev_p IS NULL OR {gap_before} > 1)
                    THEN 1 ELSE 0 END) AS resurrecting,
           sum(CASE WHEN next_p IS NULL OR {gap_after} > 1 THEN 1 ELSE 0 END) AS stopping
    FROM seq GROUP BY p
    """
    rows = {
        r["p"]: r
        for r in store.query(sql, scope.sql_params(lookback=lookback, event=event)).to_pylist()
    }
    out = []
    for start in starts:
        r = rows.get(start, {})
        before = rows.get(previous_period(start, period, sunday), {})
        out.append(
            LifecyclePeriod(
                start,
                int(r.get("new") or 0),
                int(r.get("returning") or 0),
                int(r.get("resurrecting") or 0),
                -int(before.get("stopping") or 0),
            )
        )
    return out
