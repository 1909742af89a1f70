"""Funnels: how many persons went through a sequence of events within a conversion window."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from liucun.analytics.activity_source import Scope
from liucun.analytics.breakdown import (
    breakdown_expr,
    field_expr,
    person_values_join,
    profile_attribute,
)
from liucun.analytics.params import FunnelOrder, StepSpec, parse_step
from liucun.warehouse.queries import event_person, event_person_join
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class FunnelQuery:
    """Steps are event names, or `event[field=value]` (see `params.parse_step`)."""

    steps: list[str]
    window_seconds: int
    order: FunnelOrder = FunnelOrder.ordered
    breakdown: str | None = None

    @property
    def specs(self) -> list[StepSpec]:
        return [parse_step(s) for s in self.steps]

    def repeats(self, k: int) -> bool:
        """Whether step k's event name is an earlier step's too (then it must come later)."""
        names = [s.event for s in self.specs]
        return names[k] in names[:k]


@dataclass(frozen=True)
class FunnelStep:
    """One step: persons who reached it, conversion from the first step and from the previous
    one, and the mean and median seconds from the previous step (over the persons who
    reached this step; null for the first step, and for steps in any order)."""

    step: int
    event: str
    persons: int
    conversion: float
    step_conversion: float
    drop_off: int
    mean_seconds: float | None
    median_seconds: float | None


@dataclass(frozen=True)
class FunnelBreakdown:
    value: str | None
    steps: list[FunnelStep]


def utc_bounds(scope: Scope) -> tuple[datetime, datetime]:
    """The UTC instants where the scope's first local day starts and the day after its last
    starts (DST-aware)."""
    zone = ZoneInfo(scope.timezone)

    def start(day: Any) -> datetime:
        return datetime.combine(day, time(), zone).astimezone(UTC)

    return start(scope.first_day), start(scope.last_day + timedelta(days=1))


def _step_matches(store: EventStore, q: FunnelQuery) -> str:
    """Columns m0, m1, …: 1 where the event row is that step (its name, and its field filter)."""
    d = store.dialect
    columns = []
    for k, spec in enumerate(q.specs):
        cond = f"e.event = {d.param(f'step{k}')}"
        if spec.key is not None:
            cond += f" AND {field_expr(store, spec.key)} = {d.param(f'step{k}_value')}"
        columns.append(f"CASE WHEN {cond} THEN 1 ELSE 0 END AS m{k}")
    return ", ".join(columns)


def _step_events_sql(store: EventStore, q: FunnelQuery, every_event: bool) -> str:
    """The persons' events in the range, times in µs since the epoch, flagged with the steps
    they are: the steps' events, or every event numbered in time order per person (strict)."""
    d = store.dialect
    names = ", ".join(d.param(f"step{i}") for i in range(len(q.steps)))
    only_steps = "" if every_event else f"AND e.event IN ({names})"
    # strict order needs each event's place in the person's sequence; the others do not
    rn = (
        f"row_number() OVER (PARTITION BY {event_person()} "
        f"ORDER BY e.ts, {d.uuid_order('e.event_id')})"
        if every_event
        else "0"
    )
    return f"""
    SELECT {event_person()} AS person_id, {d.epoch_us("e.ts")} AS us,
           e.event, {breakdown_expr(store, q.breakdown)} AS bd, {rn} AS rn,
           {_step_matches(store, q)}
    FROM events e
    {event_person_join(d, d.param("app"))}
    WHERE e.app_id = {d.param("app")} {only_steps}
      AND e.ts >= {d.param("ts_first")} AND e.ts < {d.param("ts_end")}
    """


def _next_time(step: int, strictly_after: bool) -> str:
    """For each event row, the time of the person's next event of step `step` at or after it
    (strictly after: a step that repeats an earlier step's event must be another event)."""
    # a running minimum from the person's last event backwards
    end = "1 PRECEDING" if strictly_after else "CURRENT ROW"
    return (
        f"min(CASE WHEN m{step} = 1 THEN us END) OVER ("
        f"PARTITION BY person_id ORDER BY us DESC RANGE BETWEEN UNBOUNDED PRECEDING AND {end})"
    )


def _ordered_sql(store: EventStore, q: FunnelQuery) -> str:
    """f0, f1, …: the attempts that reached each step. An attempt starts at a first-step
    event; each later step is the earliest event of that step at or after the previous step
    (an as-of join), within the window of the first step.

    From the third step on, a step's join reads only the persons who did its event at all,
    so a rare late step (a payment) costs little however common the first ones are. The
    second step's join reads every first-step event: there the filter cost more than it saved
    (a fifth of the funnel on bench/analytics.py), as the second step of a key path is
    common. (Window functions carrying each row's next event of every step gave the same
    answers 1.5× slower on DuckDB.)
    """
    limit = q.window_seconds * 1_000_000
    ctes = ["f0 AS (SELECT person_id, bd, us AS t0 FROM e WHERE m0 = 1)"]
    for k in range(1, len(q.steps)):
        kept = ", ".join(f"f.t{j}" for j in range(k))
        # a step may share the previous step's time, unless it repeats an earlier step's
        # event, which must then be a later event
        cmp = ">" if q.repeats(k) else ">="
        ctes.append(
            f"f{k} AS (SELECT f.person_id, {kept}, x.us AS t{k} "
            f"FROM (SELECT * FROM f{k - 1}{_doers(k) if k > 1 else ''}) f "
            f"ASOF JOIN (SELECT person_id, us FROM e WHERE m{k} = 1) x "
            f"ON x.person_id = f.person_id AND x.us {cmp} f.t{k - 1} "
            f"WHERE x.us <= f.t0 + {limit})"
        )
    return ",\n".join(ctes)


def _chain_sql(store: EventStore, q: FunnelQuery) -> str:
    """The ordered funnel in one chain: c0 holds every attempt, each later c{k} adds the
    attempt's step k (null when it got no further) by a left as-of join, and `best` takes,
    per person, the furthest reach and the step gaps of the latest attempt at that reach.

    The same answers as `_ordered_sql` + `_furthest_sql`, for engines whose as-of join probes
    a hash table: every attempt goes through every step's join, but nothing is read twice
    (on ClickHouse, 1.96 s → 1.25 s on bench/analytics.py). Where the join sorts both sides
    (DuckDB), sorting all attempts again for each step costs more (0.84 s → 1.10 s) than
    the other plan's narrowing to the persons who did the step's event.
    """
    d = store.dialect
    n = len(q.steps)
    limit = q.window_seconds * 1_000_000
    ctes = ["c0 AS (SELECT person_id, bd, us AS t0 FROM e WHERE m0 = 1)"]
    for k in range(1, n):
        kept = ", ".join(f"f.t{j}" for j in range(k))
        cmp = ">" if q.repeats(k) else ">="
        ctes.append(
            f"c{k} AS (SELECT f.person_id, f.bd, {kept}, "
            f"CASE WHEN x.us <= f.t0 + {limit} THEN x.us END AS t{k} "
            f"FROM c{k - 1} f ASOF LEFT JOIN (SELECT person_id, us FROM e WHERE m{k} = 1) x "
            f"ON x.person_id = f.person_id AND x.us {cmp} f.t{k - 1})"
        )
    reach = " + ".join(f"CASE WHEN t{k} IS NOT NULL THEN 1 ELSE 0 END" for k in range(1, n))
    ctes.append(f"reached AS (SELECT c{n - 1}.*, {reach} AS reach FROM c{n - 1})")
    latest = "(reach, t0)"
    gaps = "".join(f", {d.last_by(f't{j} - t{j - 1}', latest)} AS gap{j}" for j in range(1, n))
    first_bd = d.first_by_with_nulls("bd", "t0") if q.breakdown else "max(bd)"
    ctes.append(
        f"best AS (SELECT person_id, {first_bd} AS first_bd, max(reach) AS reach{gaps} "
        "FROM reached GROUP BY person_id)"
    )
    return ",\n".join(ctes)


def _doers(k: int) -> str:
    return f" WHERE person_id IN (SELECT person_id FROM e WHERE m{k} = 1)"


def _strict_sql(store: EventStore, q: FunnelQuery) -> str:
    """f0, f1, …: the attempts that reached each step, where each later step must be the
    person's very next event (of any kind), within the window of the first step."""
    ctes = ["f0 AS (SELECT person_id, bd, us AS t0, rn AS rn0 FROM e WHERE m0 = 1)"]
    for k in range(1, len(q.steps)):
        kept = ", ".join(f"f.t{j}, f.rn{j}" for j in range(k))
        ctes.append(
            f"f{k} AS (SELECT f.person_id, {kept}, x.us AS t{k}, x.rn AS rn{k} "
            f"FROM f{k - 1} f JOIN e x ON x.person_id = f.person_id "
            f"AND x.rn = f.rn{k - 1} + 1 AND x.m{k} = 1 "
            f"WHERE x.us <= f.t0 + {q.window_seconds * 1_000_000})"
        )
    return ",\n".join(ctes)


def _furthest_sql(store: EventStore, q: FunnelQuery) -> str:
    """Per person and step k, from the attempts that reached k: the person's breakdown value
    (g0) or the step gaps of the latest of those attempts (g1, g2, …), then one row per person
    with reach (the last step with a g row) and the gaps of the latest attempt at that reach."""
    d = store.dialect
    n = len(q.steps)
    latest = "(t0, rn0)" if q.order == FunnelOrder.strict else "t0"
    # without a breakdown `bd` is null throughout: no need to find the first one
    first_bd = d.first_by_with_nulls("bd", "t0") if q.breakdown else "max(bd)"
    ctes = [f"g0 AS (SELECT person_id, {first_bd} AS bd FROM f0 GROUP BY person_id)"]
    for k in range(1, n):
        gaps = ", ".join(
            f"{d.last_by(f't{j} - t{j - 1}', latest)} AS gap{j}" for j in range(1, k + 1)
        )
        ctes.append(f"g{k} AS (SELECT person_id, {gaps} FROM f{k} GROUP BY person_id)")
    joins = " ".join(f"LEFT JOIN g{k} ON g{k}.person_id = g0.person_id" for k in range(1, n))
    reach = " + ".join(
        f"CASE WHEN g{k}.person_id IS NOT NULL THEN 1 ELSE 0 END" for k in range(1, n)
    )
    # the furthest attempt's gap of step j: from the highest stage that has one
    furthest = "".join(
        ", coalesce(" + ", ".join(f"g{k}.gap{j}" for k in range(n - 1, j - 1, -1)) + f") AS gap{j}"
        for j in range(1, n)
    )
    ctes.append(
        "best AS (SELECT g0.person_id AS person_id, g0.bd AS first_bd, "
        f"{reach or '0'} AS reach{furthest} FROM g0 {joins})"
    )
    return ",\n".join(ctes)


def _any_order_sql(store: EventStore, q: FunnelQuery) -> str:
    """Attempts from every step event: the steps done within the window starting there; its
    reach is that count less one (the last step reached is the count). Per person the
    furthest attempt, the breakdown value of the first one, and no step times."""
    d = store.dialect
    n = len(q.steps)
    limit = q.window_seconds * 1_000_000
    found = " + ".join(
        f"CASE WHEN {_next_time(k, False)} <= us + {limit} THEN 1 ELSE 0 END" for k in range(n)
    )
    nulls = "".join(f", max(CASE WHEN 1 = 0 THEN us END) AS gap{k}" for k in range(1, n))
    return (
        f"attempts AS (SELECT person_id, bd, us, {found} - 1 AS reach "
        f"FROM e WHERE {' + '.join(f'm{k}' for k in range(n))} > 0),\n"
        f"best AS (SELECT person_id, {d.first_by_with_nulls('bd', 'us')} AS first_bd, "
        f"max(reach) AS reach{nulls} FROM attempts GROUP BY person_id)"
    )


def funnel(
    store: EventStore, scope: Scope, q: FunnelQuery, person_values: pa.Table | None = None
) -> list[FunnelBreakdown]:
    """Per breakdown value (one group without a breakdown), each step's persons and times.

    A person's attempt starts at a first-step event inside the range; every step must happen
    within `window_seconds` of it (inclusive) and inside the range. The person counts for
    the furthest step any attempt reached; times come from the latest attempt that reached
    it. A person is broken down by the value on their first first-step event in the range,
    or, for a `profile.NAME` breakdown, by their value in `person_values` (person_id, value).
    """
    d = store.dialect
    n = len(q.steps)
    tables: dict[str, pa.Table] = {}
    group, persons = "first_bd", "best"
    if profile_attribute(q.breakdown) is not None:
        join, tables = person_values_join("best", person_values)
        group, persons = "pv.value", f"best {join}"
        q = replace(q, breakdown=None)  # the events carry none
    if q.order == FunnelOrder.any:
        body = _any_order_sql(store, q)
    elif q.order == FunnelOrder.ordered and d.asof_join_by_hash:
        body = _chain_sql(store, q)
    else:
        chain = _strict_sql(store, q) if q.order == FunnelOrder.strict else _ordered_sql(store, q)
        body = f"{chain},\n{_furthest_sql(store, q)}"
    columns = ["count(*) AS p0"]
    for k in range(1, n):
        columns += [
            f"sum(CASE WHEN reach >= {k} THEN 1 ELSE 0 END) AS p{k}",
            f"{d.exact_sum(f'gap{k}')} AS gap_sum{k}",
            f"count(gap{k}) AS gaps{k}",
            f"{d.median(f'gap{k}')} AS median{k}",
        ]
    sql = f"""
    WITH e AS {d.materialized} ({_step_events_sql(store, q, q.order == FunnelOrder.strict)}),
    {body}
    SELECT {group} AS bd, {", ".join(columns)} FROM {persons} GROUP BY {group}
    """
    ts_first, ts_end = utc_bounds(scope)
    params = scope.sql_params(ts_first=ts_first, ts_end=ts_end, **_step_params(q))
    # the most persons first, equal counts by value (no value last): the same on every engine
    rows = store.query(sql, params, tables).to_pylist()
    rows.sort(key=lambda r: (-r["p0"], r["bd"] is None, r["bd"] or ""))
    if not rows:
        rows = [{"bd": None, "p0": 0}]
    return [FunnelBreakdown(r["bd"], _steps(q, r)) for r in rows]


def _step_params(q: FunnelQuery) -> dict[str, str]:
    params = {}
    for k, spec in enumerate(q.specs):
        params[f"step{k}"] = spec.event
        if spec.value is not None:
            params[f"step{k}_value"] = spec.value
    return params


def _steps(q: FunnelQuery, row: dict[str, Any]) -> list[FunnelStep]:
    first = int(row["p0"])
    out = []
    for k, event in enumerate(q.steps):
        persons = int(row.get(f"p{k}") or 0)
        before = int(row.get(f"p{k - 1}") or 0) if k else persons
        gaps, median = int(row.get(f"gaps{k}") or 0), row.get(f"median{k}")
        # µs added up exactly, then one division: the same mean on every engine
        mean = int(row[f"gap_sum{k}"]) / (gaps * 1_000_000) if gaps else None
        out.append(
            FunnelStep(
                step=k + 1,
                event=event,
                persons=persons,
                conversion=persons / first if first else 0.0,
                step_conversion=persons / before if before else 0.0,
                drop_off=before - persons,
                mean_seconds=mean,
                median_seconds=float(median) / 1_000_000 if median is not None else None,
            )
        )
    return out
