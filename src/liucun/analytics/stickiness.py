"""Stickiness: how many persons were active in exactly (or at least) 1, 2, … N periods."""

from __future__ import annotations

from dataclasses import dataclass

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.params import Period
from liucun.analytics.periods import period_starts
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class Stickiness:
    """`persons[k - 1]` persons were active in exactly k of the range's `periods` periods (at
    least k, cumulative). A period counts for a person when they did the event at least
    `min_events` times in it; only the range's own days are read (a week cut by the range
    counts its days inside it), as PostHog does."""

    period: Period
    periods: int
    min_events: int
    cumulative: bool
    persons: list[int]


def stickiness(
    store: EventStore,
    scope: Scope,
    event: str,
    period: Period,
    min_events: int = 1,
    cumulative: bool = False,
) -> Stickiness:
    d = store.dialect
    n_periods = len(
        period_starts(scope.first_day, scope.last_day, period, scope.week_starts_sunday)
    )
    p = d.period_start("day", period, scope.week_starts_sunday)
    active = active_days_sql(store, scope.timezone, event, "event")
    sql = f"""
    SELECT k, count(*) AS persons FROM (
        SELECT person_id, count(*) AS k FROM (
            SELECT person_id, {p} AS p FROM ({active}) t
            WHERE day BETWEEN {d.param("first")} AND {d.param("last")}
            GROUP BY person_id, {p}
            HAVING sum(n) >= {d.param("min_events")}
        ) x GROUP BY person_id
    ) y GROUP BY k
    """
    params = scope.sql_params(event=event, min_events=min_events)
    found = {int(r["k"]): int(r["persons"]) for r in store.query(sql, params).to_pylist()}
    exact = [found.get(k, 0) for k in range(1, n_periods + 1)]
    persons = [sum(exact[i:]) for i in range(n_periods)] if cumulative else exact
    return Stickiness(period, n_periods, min_events, cumulative, persons)
