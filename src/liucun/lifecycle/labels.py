"""Lifecycle labels: every person's stage on an app-local day, from the playbook's churn rules.

Definitions (docs/lifecycle.md), for a person as of day D (events up to the end of D, local):

- first day F: the day of the person's creation time when the app imported one (and it is not
  after D), else the day of their first event. Age = D − F; the person is a *new user* while
  age < `new_user_days` (day 1 … day 7 with the default 7).
- last active day L: the latest day ≤ D with an activity event (any event by default), else F.
  Days since active r = D − L (0 on a day of activity).
- user type: *new* while L − F < `new_user_days` (the person never came back after their first
  week), else *established*. Typing by L rather than by D keeps a one-week user from turning
  active again on day 8 without a visit; the type picks the preset's recency thresholds.
- recency stage: active when r < silent_after_days, silent when r < churned_after_days, else
  churned. Each depth signal that holds (all its conditions, on counts of events up to D) and
  applies to the user type moves the stage one step (`shift`); the sum is clamped to the range.
- label: `silent` or `churned` from the stage; an active stage is `new` for a new user,
  `resurrected` when the person came back within the last `resurrected_days` days from a gap
  that had made them churned by recency (the day before the return, days since active ≥ the
  churned threshold of their type then), else `active`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from liucun.events.standard import ORDER_PAID_EVENT, PAGE_VIEW_EVENT, VISIT_EVENT
from liucun.lifecycle.label_names import LABELS
from liucun.playbook.churn import ChurnPreset, ChurnRules, EventCondition
from liucun.warehouse.queries import (
    event_person,
    event_person_join,
    person_days_sql,
    person_names_sql,
)
from liucun.warehouse.store import EventStore

ACTIVE, SILENT, CHURNED = 0, 1, 2

# events the daily rollup already counts per person and day: read from it, not from events
_ROLLUP_COUNTS = {VISIT_EVENT: "visits", PAGE_VIEW_EVENT: "page_views", ORDER_PAID_EVENT: "orders"}


@dataclass(frozen=True)
class PersonActivity:
    """What the labels of one day are computed from: one entry per person seen by that day."""

    persons: list[str]
    first_day: npt.NDArray[np.int64]  # days since 1970-01-01
    last_day: npt.NDArray[np.int64]
    resurrected: npt.NDArray[np.bool_]
    # per depth-signal condition (in playbook order), each person's event count
    counts: list[npt.NDArray[np.int64]]


def _conditions(preset: ChurnPreset) -> list[EventCondition]:
    return [c for s in preset.depth_signals for c in s.when]


def _condition_counts_sql(store: EventStore, tz: str, cond: EventCondition, i: int) -> str:
    """(person_id, n): how often each person did the condition's event in its window."""
    d = store.dialect
    window = (
        ""
        if cond.within_days is None
        else f" AND day >= {d.add_days(d.param('as_of'), str(1 - cond.within_days))}"
    )
    column = _ROLLUP_COUNTS.get(cond.event) if cond.page is None else None
    if column is not None:
        source = f"SELECT person_id, day, {column} AS n FROM pd"
    else:
        day = d.local_date("e.ts", d.quote(tz))
        page = f" AND e.page = {d.param(f'page{i}')}" if cond.page is not None else ""
        source = f"""
        SELECT {event_person()} AS person_id, {day} AS day, count(*) AS n
        FROM events e {event_person_join(d, d.param("app"))}
        WHERE e.app_id = {d.param("app")} AND e.event = {d.param(f"event{i}")}{page}
        GROUP BY {event_person()}, {day}"""
    return f"""SELECT person_id, sum(n) AS n FROM ({source}) s
        WHERE day <= {d.param("as_of")}{window} GROUP BY person_id"""


def _activity_sql(store: EventStore, tz: str, preset: ChurnPreset) -> str:
    """(person_id, day): the days each person did the preset's activity event."""
    d = store.dialect
    event = preset.activity_event
    if event is None:
        return "SELECT person_id, day FROM pd WHERE events > 0"
    column = _ROLLUP_COUNTS.get(event)
    if column is not None:
        return f"SELECT person_id, day FROM pd WHERE {column} > 0"
    day = d.local_date("e.ts", d.quote(tz))
    return f"""
    SELECT DISTINCT {event_person()} AS person_id, {day} AS day
    FROM events e {event_person_join(d, d.param("app"))}
    WHERE e.app_id = {d.param("app")} AND e.event = {d.param("activity")}
      AND {day} <= {d.param("as_of")}"""


def person_activity(
    store: EventStore, app_id: str, tz: str, rules: ChurnRules, as_of: date
) -> PersonActivity:
    """Each person's first and last active day, return flag and signal counts as of `as_of`."""
    d = store.dialect
    preset = rules.preset
    conds = _conditions(preset)
    new_days = rules.new_user_days

    def churned_after(first: str, prev: str) -> str:
        # the churned threshold of the person's type on the day of their previous activity
        tenure = d.periods_between(first, prev, "day")
        return (
            f"CASE WHEN {tenure} < {new_days} THEN {preset.new_users.churned_after_days} "
            f"ELSE {preset.established.churned_after_days} END"
        )

    created = d.local_date("created_at", d.quote(tz))
    joins = "".join(
        f" LEFT JOIN ({_condition_counts_sql(store, tz, c, i)}) c{i}"
        f" ON c{i}.person_id = b.person_id"
        for i, c in enumerate(conds)
    )
    counts = "".join(f", coalesce(c{i}.n, 0) AS n{i}" for i in range(len(conds)))
    sql = f"""
    WITH pd AS {d.materialized} (
        SELECT * FROM ({person_days_sql(d, d.param("app"))}) x WHERE day <= {d.param("as_of")}
    ),
    act AS {d.materialized} ({_activity_sql(store, tz, preset)}),
    seen AS (SELECT person_id, min(day) AS seen_day FROM pd GROUP BY person_id),
    created AS (
        SELECT user_key, min({created}) AS created_day FROM user_created
        WHERE app_id = {d.param("app")} GROUP BY user_key
    ),
    born AS (
        SELECT seen.person_id,
               CASE WHEN created.created_day IS NOT NULL
                         AND created.created_day <= {d.param("as_of")}
                    THEN created.created_day ELSE seen.seen_day END AS first_day
        FROM seen LEFT JOIN created ON created.user_key = seen.person_id
    ),
    last AS (SELECT person_id, max(day) AS last_day FROM act GROUP BY person_id),
    gaps AS (
        SELECT person_id, day,
               lag({d.nullable("day")}) OVER (PARTITION BY person_id ORDER BY day) AS prev
        FROM act
    ),
    returns AS (
        SELECT g.person_id, count(*) AS returns
        FROM gaps g JOIN born rb ON rb.person_id = g.person_id
        WHERE g.prev IS NOT NULL
          AND g.day > {d.add_days(d.param("as_of"), str(-rules.resurrected_days))}
          AND {d.periods_between("g.prev", "g.day", "day")} - 1
              >= {churned_after("rb.first_day", "g.prev")}
        GROUP BY g.person_id
    )
    SELECT names.person AS person, b.first_day AS first_day,
           coalesce(last.last_day, b.first_day) AS last_day,
           coalesce(r.returns, 0) AS returns{counts}
    FROM born b
    JOIN ({person_names_sql(d.param("app"))}) names ON names.person_id = b.person_id
    LEFT JOIN last ON last.person_id = b.person_id
    LEFT JOIN returns r ON r.person_id = b.person_id{joins}
    ORDER BY person
    """
    params: dict[str, Any] = {"app": app_id, "as_of": as_of, "activity": preset.activity_event}
    for i, c in enumerate(conds):
        params[f"event{i}"] = c.event
        params[f"page{i}"] = c.page
    table = store.query(sql, params)
    return PersonActivity(
        persons=table.column("person").to_pylist(),
        first_day=_day_numbers(table.column("first_day")),
        last_day=_day_numbers(table.column("last_day")),
        resurrected=table.column("returns").to_numpy() > 0,
        counts=[
            table.column(f"n{i}").cast(pa.int64()).to_numpy(zero_copy_only=False)
            for i in range(len(conds))
        ],
    )


def _day_numbers(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    return column.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass(frozen=True)
class DayLabels:
    """Every person's label as of one day, and the depth signals that moved them."""

    day: date
    persons: list[str]
    labels: list[str]
    signals: list[tuple[str, ...]]

    def counts(self) -> dict[str, int]:
        """Persons per label, every label present (0 when none)."""
        out = dict.fromkeys(LABELS, 0)
        for label in self.labels:
            out[label] += 1
        return out


def new_type(rules: ChurnRules, activity: PersonActivity) -> npt.NDArray[np.bool_]:
    """Whether each person is judged as a new user (their activity all in their first
    `new_user_days` days), else as an established one."""
    return (activity.last_day - activity.first_day) < rules.new_user_days


def signal_shifts(
    rules: ChurnRules, activity: PersonActivity, is_new_type: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], list[list[str]]]:
    """Each person's net shift from the preset's depth signals that hold and apply to their
    user type, and the names of those signals."""
    n = len(activity.persons)
    fired: list[list[str]] = [[] for _ in range(n)]
    shift = np.zeros(n, dtype=np.int64)
    k = 0
    for signal in rules.preset.depth_signals:
        holds = np.ones(n, dtype=bool)
        for cond in signal.when:
            count = activity.counts[k]
            k += 1
            if cond.at_least is not None:
                holds &= count >= cond.at_least
            if cond.at_most is not None:
                holds &= count <= cond.at_most
        if signal.applies_to == "new":
            holds &= is_new_type
        elif signal.applies_to == "established":
            holds &= ~is_new_type
        shift += np.where(holds, signal.shift, 0)
        for i in np.flatnonzero(holds):
            fired[i].append(signal.name)
    return shift, fired


def label_persons(rules: ChurnRules, activity: PersonActivity, as_of: date) -> DayLabels:
    """Apply the churn rules (module docstring) to the activity of every person."""
    preset = rules.preset
    today = (as_of - date(1970, 1, 1)).days
    age = today - activity.first_day
    since_active = today - activity.last_day
    is_new_type = new_type(rules, activity)
    silent_after = np.where(
        is_new_type, preset.new_users.silent_after_days, preset.established.silent_after_days
    )
    churned_after = np.where(
        is_new_type, preset.new_users.churned_after_days, preset.established.churned_after_days
    )
    stage = np.where(
        since_active < silent_after, ACTIVE, np.where(since_active < churned_after, SILENT, CHURNED)
    )
    shift, fired = signal_shifts(rules, activity, is_new_type)
    stage = np.clip(stage + shift, ACTIVE, CHURNED)
    labels = np.where(
        stage == CHURNED,
        "churned",
        np.where(
            stage == SILENT,
            "silent",
            np.where(
                age < rules.new_user_days,
                "new",
                np.where(activity.resurrected, "resurrected", "active"),
            ),
        ),
    )
    return DayLabels(as_of, activity.persons, labels.tolist(), [tuple(f) for f in fired])


def labels_as_of(
    store: EventStore, app_id: str, tz: str, rules: ChurnRules, as_of: date
) -> DayLabels:
    """Every person's lifecycle label on app-local day `as_of` under `rules`."""
    return label_persons(rules, person_activity(store, app_id, tz, rules, as_of), as_of)


def depth_shifts(
    store: EventStore, app_id: str, tz: str, rules: ChurnRules, as_of: date
) -> dict[str, int]:
    """person id → the net shift of the depth signals that hold for them on `as_of` (a
    churn-risk feature: the operator's own definition of risky behaviour)."""
    activity = person_activity(store, app_id, tz, rules, as_of)
    shift, _ = signal_shifts(rules, activity, new_type(rules, activity))
    return dict(zip(activity.persons, shift.tolist(), strict=True))
