"""The daily labelling job and the label history it keeps in the state store.

Each labelled day stores only the persons whose label changed (a transition row), plus the
day's counts per label. Labelling a day at or before the latest labelled one relabels from
there on (the past under the playbook now in force); a gap since the latest labelled day is
filled, so the history has no holes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.lifecycle.labels import LABELS, DayLabels, labels_as_of
from liucun.playbook.churn import ChurnRules
from liucun.state.tables import lifecycle_days, lifecycle_labels
from liucun.warehouse.store import EventStore

_INSERT_CHUNK = 5_000


@dataclass(frozen=True)
class LabelledDay:
    day: date
    playbook_revision: int
    counts: dict[str, int]
    # persons whose label changed that day
    changes: int


@dataclass(frozen=True)
class Transition:
    """A person's label from `day` on (until their next transition)."""

    person_id: str
    day: date
    label: str
    previous: str | None
    signals: list[str]
    playbook_revision: int


def latest_labelled_day(engine: sa.Engine, app_id: str) -> date | None:
    with engine.connect() as conn:
        value = conn.execute(
            sa.select(sa.func.max(lifecycle_days.c.day)).where(lifecycle_days.c.app_id == app_id)
        ).scalar()
    return value if isinstance(value, date) else None


def _days(first: date, last: date) -> Iterator[date]:
    for i in range((last - first).days + 1):
        yield first + timedelta(days=i)


def days_to_label(engine: sa.Engine, app_id: str, first: date, last: date) -> tuple[date, date]:
    """The days a run asked for `first`..`last` must label: from the day after the latest
    labelled one when that is earlier (no holes), to the latest labelled one when that is
    later (a relabel keeps the history continuous)."""
    if first > last:
        raise ValueError(f"first day {first} is after last day {last}")
    latest = latest_labelled_day(engine, app_id)
    if latest is None:
        return first, last
    return min(first, latest + timedelta(days=1)), max(last, latest)


def _labels_before(conn: sa.Connection, app_id: str, day: date) -> dict[str, str]:
    """Each person's label in force on the day before `day`."""
    t = lifecycle_labels
    latest = (
        sa.select(t.c.person_id, sa.func.max(t.c.day).label("day"))
        .where(t.c.app_id == app_id, t.c.day < day)
        .group_by(t.c.person_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(t.c.person_id, t.c.label).join(
            latest,
            sa.and_(
                t.c.app_id == app_id,
                t.c.person_id == latest.c.person_id,
                t.c.day == latest.c.day,
            ),
        )
    )
    return {r.person_id: r.label for r in rows}


def _store_day(
    conn: sa.Connection, app_id: str, result: DayLabels, current: dict[str, str], revision: int
) -> LabelledDay:
    rows: list[dict[str, Any]] = []
    for person, label, signals in zip(result.persons, result.labels, result.signals, strict=True):
        previous = current.get(person)
        if previous == label:
            continue
        current[person] = label
        rows.append(
            {
                "app_id": app_id,
                "person_id": person,
                "day": result.day,
                "label": label,
                "previous": previous,
                "signals": ",".join(signals),
                "playbook_revision": revision,
            }
        )
    for start in range(0, len(rows), _INSERT_CHUNK):
        conn.execute(lifecycle_labels.insert(), rows[start : start + _INSERT_CHUNK])
    counts = result.counts()
    conn.execute(
        lifecycle_days.insert(),
        {
            "app_id": app_id,
            "day": result.day,
            "playbook_revision": revision,
            "counts": json.dumps(counts),
            "labelled_at": datetime.now(UTC),
        },
    )
    return LabelledDay(result.day, revision, counts, len(rows))


def label_days(
    store: EventStore,
    engine: sa.Engine,
    app_id: str,
    timezone: str,
    rules: ChurnRules,
    revision: int,
    first: date,
    last: date,
    on_day: Callable[[LabelledDay], None] | None = None,
) -> list[LabelledDay]:
    """Label every day that `days_to_label` gives under `rules` (playbook `revision`) and keep
    the transitions; each day commits on its own, so an interrupted run keeps what it did."""
    start, end = days_to_label(engine, app_id, first, last)
    with engine.begin() as conn:
        conn.execute(
            lifecycle_labels.delete().where(
                lifecycle_labels.c.app_id == app_id, lifecycle_labels.c.day >= start
            )
        )
        conn.execute(
            lifecycle_days.delete().where(
                lifecycle_days.c.app_id == app_id, lifecycle_days.c.day >= start
            )
        )
        current = _labels_before(conn, app_id, start)
    done = []
    for day in _days(start, end):
        result = labels_as_of(store, app_id, timezone, rules, day)
        with engine.begin() as conn:
            labelled = _store_day(conn, app_id, result, current, revision)
        done.append(labelled)
        if on_day is not None:
            on_day(labelled)
    return done


def label_counts(engine: sa.Engine, app_id: str, first: date, last: date) -> list[LabelledDay]:
    """The labelled days in `first`..`last` with their counts per label."""
    t = lifecycle_days
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.day, t.c.playbook_revision, t.c.counts)
            .where(t.c.app_id == app_id, t.c.day >= first, t.c.day <= last)
            .order_by(t.c.day)
        ).all()
    out = []
    for r in rows:
        counts = {label: int(json.loads(r.counts).get(label, 0)) for label in LABELS}
        out.append(LabelledDay(r.day, r.playbook_revision, counts, -1))
    return out


def _transition(r: Any) -> Transition:
    signals = [s for s in r.signals.split(",") if s]
    return Transition(r.person_id, r.day, r.label, r.previous, signals, r.playbook_revision)


def person_history(engine: sa.Engine, app_id: str, person_id: str) -> list[Transition]:
    """A person's label transitions, oldest first (empty when never labelled)."""
    t = lifecycle_labels
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.app_id == app_id, t.c.person_id == person_id).order_by(t.c.day)
        ).all()
    return [_transition(r) for r in rows]


def labels_on(
    engine: sa.Engine, app_id: str, day: date, labels: tuple[str, ...] = LABELS
) -> list[Transition]:
    """Every person whose label on `day` is one of `labels`: the transition that set it."""
    t = lifecycle_labels
    latest = (
        sa.select(t.c.person_id, sa.func.max(t.c.day).label("day"))
        .where(t.c.app_id == app_id, t.c.day <= day)
        .group_by(t.c.person_id)
        .subquery()
    )
    query = (
        sa.select(t)
        .join(
            latest,
            sa.and_(
                t.c.app_id == app_id,
                t.c.person_id == latest.c.person_id,
                t.c.day == latest.c.day,
            ),
        )
        .where(t.c.label.in_(labels))
        .order_by(t.c.person_id)
    )
    with engine.connect() as conn:
        return [_transition(r) for r in conn.execute(query)]
