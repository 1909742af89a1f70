"""Retention: cohorts of persons by when they started, and how many came back in each period."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from itertools import accumulate
from typing import Any

import pyarrow as pa

from liucun.analytics.activity_source import Scope, active_days_sql, first_value_days_sql
from liucun.analytics.breakdown import (
    breakdown_expr,
    event_breakdown,
    person_values_join,
    profile_attribute,
)
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
    breakdown: str | None = None


@dataclass(frozen=True)
class RetentionBreakdown:
    """The cohorts of the persons whose start event had breakdown value `value`."""

    value: str | None
    cohorts: list[Cohort]


def _cohorts_sql(store: EventStore, scope: Scope, q: RetentionQuery, starts: str) -> str:
    """(person_id, cohort[, bd]) from `starts`, a relation of (person_id, day[, first_value])
    start events; `bd` (with a breakdown) is the value on the person's first start event of
    the cohort: ever (first_time), or in the cohort's period (recurring)."""
    d = store.dialect
    sunday = scope.week_starts_sunday
    bd = f", {d.first_by_with_nulls('first_value', 'day')} AS bd" if q.breakdown else ""
    if q.type == RetentionType.first_time:
        # the period of each person's first start event ever, not only within the range; a
        # first event after the range's last day is not known yet, as in recurring retention
        first = d.period_start("min(day)", q.period, sunday)
        return f"""
        SELECT * FROM (
            SELECT person_id, {first} AS cohort{bd} FROM {starts} s GROUP BY person_id
            HAVING min(day) <= {d.param("last")}
        ) f WHERE cohort >= {d.param("cohort_first")}
        """
    period = d.period_start("day", q.period, sunday)
    return f"""
    SELECT person_id, {period} AS cohort{bd}
    FROM {starts} s
    WHERE day BETWEEN {d.param("cohort_first")} AND {d.param("last")}
    GROUP BY person_id, {period}
    """


def _starts_sql(store: EventStore, scope: Scope, q: RetentionQuery) -> str:
    """(person_id, day[, first_value]): the start events, with the breakdown value of each
    person's first start event of the day when the events carry the breakdown."""
    if event_breakdown(q.breakdown) is None:
        return active_days_sql(store, scope.timezone, q.start_event, "start_event")
    value = breakdown_expr(store, q.breakdown)
    return first_value_days_sql(store, scope.timezone, q.start_event, "start_event", value)


def _cohorts_with_values(
    store: EventStore, scope: Scope, q: RetentionQuery, starts: str, join: str | None
) -> str:
    """`_cohorts_sql`, its `bd` from the events, or, with `join` (a profile breakdown), the
    person's value that `join` adds as `pv.value`."""
    if join is None:
        return _cohorts_sql(store, scope, q, starts)
    cohorts = _cohorts_sql(store, scope, replace(q, breakdown=None), starts)
    return f"SELECT c0.person_id, c0.cohort, pv.value AS bd FROM ({cohorts}) c0 {join}"


def _retention_sql(
    store: EventStore, scope: Scope, q: RetentionQuery, join: str | None = None
) -> str:
    """(bd, cohort, k, n): the cohort's size at k = 0, its returners in interval k ≥ 1."""
    d = store.dialect
    sunday = scope.week_starts_sunday
    # one pass over the person-days when the start and return events are the same
    returns = (
        "s"
        if q.return_event == q.start_event
        else f"({active_days_sql(store, scope.timezone, q.return_event, 'return_event')})"
    )
    interval = d.periods_between("c.cohort", "r.period", q.period)
    # the group of a row: its breakdown value, or one group for all without a breakdown
    g = "c.bd" if q.breakdown else "0"
    return f"""
    WITH s AS {d.materialized} ({_starts_sql(store, scope, q)}),
    c AS {d.materialized} ({_cohorts_with_values(store, scope, q, "s", join)}),
    r AS (
        SELECT DISTINCT person_id, {d.period_start("day", q.period, sunday)} AS period
        FROM {returns} t
        WHERE day BETWEEN {d.param("cohort_first")} AND {d.param("last")}
    ),
    back AS (
        SELECT c.person_id, c.cohort, {g} AS g, {interval} AS k
        FROM c JOIN r ON r.person_id = c.person_id AND r.period > c.cohort
    ),
    per_person AS (
        SELECT person_id, cohort, g, {"max(k)" if q.cumulative else "k"} AS k FROM back
        WHERE k < {q.intervals}
        {"GROUP BY person_id, cohort, g" if q.cumulative else ""}
    )
    SELECT {g} AS g, c.cohort AS cohort, 0 AS k, count(*) AS n FROM c
    GROUP BY {"c.bd, " if q.breakdown else ""}c.cohort
    UNION ALL
    SELECT g, cohort, k, count(*) AS n FROM per_person GROUP BY g, cohort, k
    """


def retention(store: EventStore, scope: Scope, q: RetentionQuery) -> list[Cohort]:
    """Cohorts for each period overlapping the scope's range (whole periods).

    first_time: a person's cohort is the period of their first start event ever.
    recurring: a person is in the cohort of every period in which they did the start event.
    A cohort member counts in interval k ≥ 1 when they did the return event in the k-th
    period after the cohort's; return events up to the range's last day count.
    """
    unbroken = RetentionQuery(
        q.period, q.intervals, q.type, q.start_event, q.return_event, q.cumulative
    )
    return retention_breakdown(store, scope, unbroken)[0].cohorts


def retention_breakdown(
    store: EventStore,
    scope: Scope,
    q: RetentionQuery,
    limit: int = 100,
    person_values: pa.Table | None = None,
) -> list[RetentionBreakdown]:
    """`retention`, per value of `q.breakdown` (one group of all persons without one).

    A cohort member is in the group of the breakdown value on the start event that put
    them in the cohort: their first start event ever (first_time), or their first one in
    the cohort's period (recurring); by time, then event id. A recurring member may so be in
    different groups in different cohorts. For a `profile.NAME` breakdown the group is the
    person's value in `person_values` (person_id, value), the same in every cohort.
    Returns are counted whatever their own value. Groups are ordered by their persons over
    all cohorts, most first; the `limit` largest are kept.
    """
    join: str | None = None
    tables: dict[str, pa.Table] = {}
    if profile_attribute(q.breakdown) is not None:
        join, tables = person_values_join("c0", person_values)
    cohort_starts = period_starts(
        scope.first_day, scope.last_day, q.period, scope.week_starts_sunday
    )
    params = scope.sql_params(
        cohort_first=cohort_starts[0],
        start_event=q.start_event,
        return_event=q.return_event,
    )
    found: dict[Any, dict[tuple[date, int], int]] = {}
    for row in store.query(_retention_sql(store, scope, q, join), params, tables).to_pylist():
        group = row["g"] if q.breakdown else None
        found.setdefault(group, {})[(row["cohort"], int(row["k"]))] = int(row["n"])
    if not found:
        found[None] = {}
    groups = [RetentionBreakdown(g, _cohorts(q, cohort_starts, f)) for g, f in found.items()]
    groups.sort(key=lambda b: (-sum(c.size for c in b.cohorts), b.value is None, b.value or ""))
    return groups[:limit]


def _cohorts(
    q: RetentionQuery, cohort_starts: list[date], found: dict[tuple[date, int], int]
) -> list[Cohort]:
    cohorts = []
    for i, start in enumerate(cohort_starts):
        observed = min(q.intervals, len(cohort_starts) - i)
        size = found.get((start, 0), 0)
        counts = [found.get((start, k), 0) for k in range(1, observed)]
        if q.cumulative:  # returned in interval k or any later one
            counts = list(accumulate(reversed(counts)))[::-1]
        cohorts.append(Cohort(start, size, [size, *counts]))
    return cohorts
