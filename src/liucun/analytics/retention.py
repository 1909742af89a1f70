"""Retention: cohorts of persons by when they started, and how many came back in each period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import accumulate

from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.params import Period, RetentionType
from liucun.analytics.periods import period_starts
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class Cohort:
    """A cohort's start period, its size and its returners per interval (interval 0 first).

    `counts[0]` is the cohort size; `counts[k]` the persons of the cohort who did the return
    event in the k-th period after the start period (or in it or any later one, cumulative).
    Intervals after the range's last day are left out, so the newest cohorts are shorter.
    """

    start: date
    size: int
    counts: list[int]


@dataclass(frozen=True)
class RetentionQuery:
    period: Period
    intervals: int
    type: RetentionType
    start_event: str
    return_event: str
    cumulative: bool = False


def _cohorts_sql(store: EventStore, scope: Scope, q: RetentionQuery, starts: str) -> str:
    """(person_id, cohort) from `starts`, a relation of (person_id, day) start events."""
    d = store.dialect
    sunday = scope.week_starts_sunday
    if q.type == RetentionType.first_time:
        # the period of each person's first start event ever, not only within the range; a
        # first event after the range's last day is not known yet, as in recurring retention
        first = d.period_start("min(day)", q.period, sunday)
        return f"""
        SELECT person_id, cohort FROM (
            SELECT person_id, {first} AS cohort FROM {starts} s GROUP BY person_id
            HAVING min(day) <= {d.param("last")}
        ) f WHERE cohort >= {d.param("cohort_first")}
        """
    return f"""
    SELECT DISTINCT person_id, {d.period_start("day", q.period, sunday)} AS cohort
    FROM {starts} s
    WHERE day BETWEEN {d.param("cohort_first")} AND {d.param("last")}
    """


def retention(store: EventStore, scope: Scope, q: RetentionQuery) -> list[Cohort]:
    """Cohorts for each period overlapping the scope's range (whole periods).

    first_time: a person's cohort is the period of their first start event ever.
    recurring: a person is in the cohort of every period in which they did the start event.
    A cohort member counts in interval k ≥ 1 when they did the return event in the k-th
    period after the cohort's; return events up to the range's last day count.
    """
    d = store.dialect
    sunday = scope.week_starts_sunday
    cohort_starts = period_starts(scope.first_day, scope.last_day, q.period, sunday)
    starts = active_days_sql(store, scope.timezone, q.start_event, "start_event")
    # one pass over the person-days when the start and return events are the same
    returns = (
        "s"
        if q.return_event == q.start_event
        else f"({active_days_sql(store, scope.timezone, q.return_event, 'return_event')})"
    )
    interval = d.periods_between("c.cohort", "r.period", q.period)
    sql = f"""
    WITH s AS {d.materialized} ({starts}),
    c AS ({_cohorts_sql(store, scope, q, "s")}),
    r AS (
        SELECT DISTINCT person_id, {d.period_start("day", q.period, sunday)} AS period
        FROM {returns} t
        WHERE day BETWEEN {d.param("cohort_first")} AND {d.param("last")}
    ),
    back AS (
        SELECT c.person_id, c.cohort, {interval} AS k
        FROM c JOIN r ON r.person_id = c.person_id AND r.period > c.cohort
    ),
    per_person AS (
        SELECT person_id, cohort, {"max(k)" if q.cumulative else "k"} AS k FROM back
        WHERE k < {q.intervals}
        {"GROUP BY person_id, cohort" if q.cumulative else ""}
    )
    SELECT cohort, 0 AS k, count(*) AS n FROM c GROUP BY cohort
    UNION ALL
    SELECT cohort, k, count(*) AS n FROM per_person GROUP BY cohort, k
    """
    params = scope.sql_params(
        cohort_first=cohort_starts[0],
        start_event=q.start_event,
        return_event=q.return_event,
    )
    found = {(r["cohort"], int(r["k"])): int(r["n"]) for r in store.query(sql, params).to_pylist()}
    cohorts = []
    for i, start in enumerate(cohort_starts):
        observed = min(q.intervals, len(cohort_starts) - i)
        size = found.get((start, 0), 0)
        counts = [found.get((start, k), 0) for k in range(1, observed)]
        if q.cumulative:  # returned in interval k or any later one
            counts = list(accumulate(reversed(counts)))[::-1]
        cohorts.append(Cohort(start, size, [size, *counts]))
    return cohorts
