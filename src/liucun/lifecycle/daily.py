"""The lifecycle job of an app: label its days under the playbook in force."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from liucun.analytics.activity_source import first_day, latest_day
from liucun.lifecycle.label_history import (
    LabelledDay,
    days_to_label,
    label_counts,
    label_days,
)
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.warehouse.store import EventStore


class LifecycleError(ValueError):
    """A request the lifecycle job cannot honour; the message says what to change."""


@dataclass(frozen=True)
class LabelPlan:
    """What a request for `first`..`last` will do: the days to compute (none when every day
    asked for is in the history already)."""

    first: date
    last: date
    compute_from: date | None
    compute_to: date | None

    @property
    def days_to_compute(self) -> int:
        if self.compute_from is None or self.compute_to is None:
            return 0
        return (self.compute_to - self.compute_from).days + 1


def data_day(store: EventStore, app: App) -> date:
    """The latest app-local day with events, else today in the app's time zone."""
    return latest_day(store, app.app_id) or datetime.now(ZoneInfo(app.timezone)).date()


def plan_labels(
    store: EventStore, engine: sa.Engine, app: App, first: date, last: date, relabel: bool
) -> LabelPlan:
    """Which days to label so that `first`..`last` can be read from the history."""
    if first > last:
        raise LifecycleError(f"`from` {first} is after `to` {last}")
    oldest = first_day(store, app.app_id)
    if oldest is None:
        raise LifecycleError(f"app {app.name!r} has no events yet: ingest events, then label")
    today = datetime.now(ZoneInfo(app.timezone)).date()
    newest = max(data_day(store, app), today)
    if last < oldest or last > newest:
        raise LifecycleError(
            f"`to` {last} is outside the app's days: from its first day with data ({oldest}) "
            f"to today ({newest})"
        )
    # days before the first event have nobody to label
    first = max(first, oldest)
    labelled = {d.day for d in label_counts(engine, app.app_id, first, last)}
    start = first
    if not relabel:
        # days in the history already are read, not recomputed, unless asked to
        missing = [d for d in _days(first, last) if d not in labelled]
        if not missing:
            return LabelPlan(first, last, None, None)
        start = missing[0]
    compute_from, compute_to = days_to_label(engine, app.app_id, start, last)
    return LabelPlan(first, last, compute_from, compute_to)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def run_labels(
    store: EventStore,
    engine: sa.Engine,
    app: App,
    plan: LabelPlan,
    on_day: Callable[[LabelledDay], None] | None = None,
) -> list[LabelledDay]:
    """Carry out `plan` under the playbook in force; the counts of the days asked for."""
    if plan.compute_from is not None and plan.compute_to is not None:
        force = playbook_in_force(engine, app.app_id)
        label_days(
            store,
            engine,
            app.app_id,
            app.timezone,
            force.playbook.churn,
            force.revision,
            plan.compute_from,
            plan.compute_to,
            on_day,
        )
    return label_counts(engine, app.app_id, plan.first, plan.last)
