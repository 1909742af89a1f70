"""Every metric by its kind name, as JSON-ready results: what the CLI and the admin API serve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import sqlalchemy as sa
from pydantic_core import to_jsonable_python

from liucun.analytics.activity import activity
from liucun.analytics.activity_source import Scope, resolve_scope
from liucun.analytics.breakdown import profile_attribute
from liucun.analytics.day_retention import day_retention
from liucun.analytics.features import features
from liucun.analytics.funnel import FunnelQuery, funnel
from liucun.analytics.lifecycle import lifecycle
from liucun.analytics.mau_report import mau_report
from liucun.analytics.pages import dwell, heatmap
from liucun.analytics.params import AnalyticsError, MetricKind, MetricParams
from liucun.analytics.paths import exits, paths
from liucun.analytics.performance import performance
from liucun.analytics.retention import RetentionQuery, retention, retention_breakdown
from liucun.analytics.stickiness import stickiness
from liucun.engage.profiles import attribute_names, person_attribute_values, sync_attributes
from liucun.state.apps import App
from liucun.warehouse.store import EventStore

Metric = Callable[[EventStore, Scope, MetricParams], Any]


def _active(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    report = activity(store, scope, p.event)
    return {"days": report.days, "months": report.months}


def _mau_report(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return mau_report(store, scope, p.event)


def _retention(
    store: EventStore, scope: Scope, p: MetricParams, person_values: pa.Table | None = None
) -> Any:
    q = RetentionQuery(
        period=p.period,
        intervals=p.intervals,
        type=p.type,
        start_event=p.start_event or p.event,
        return_event=p.return_event or p.event,
        cumulative=p.cumulative,
        breakdown=p.breakdown,
    )
    if p.breakdown is None:
        return retention(store, scope, q)
    return retention_breakdown(store, scope, q, p.limit, person_values)


def _day_retention(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return day_retention(store, scope, p.event)


def _lifecycle(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return lifecycle(store, scope, p.event, p.period)


def _stickiness(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    s = stickiness(store, scope, p.event, p.period, p.min_events, p.cumulative)
    return [{"periods": k + 1, "users": n} for k, n in enumerate(s.persons)]


def _funnel(
    store: EventStore, scope: Scope, p: MetricParams, person_values: pa.Table | None = None
) -> Any:
    if p.steps is None:
        raise AnalyticsError("a funnel needs --steps: 2 or more event names, comma-separated")
    q = FunnelQuery(p.step_list, p.window_seconds, p.order, p.breakdown)
    groups = funnel(store, scope, q, person_values)
    if p.breakdown is None:
        return groups[0].steps
    return groups


def _exits(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return exits(store, scope, p.limit)


def _paths(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return paths(store, scope, p.page, p.limit)


def _features(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return features(store, scope, p.event, p.period, min(p.limit, 50))


def _dwell(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return dwell(store, scope, p.limit)


def _heatmap(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    if p.page is None:
        raise AnalyticsError("a heatmap needs --page: the page whose taps to draw")
    columns, rows = p.grid_size
    return heatmap(store, scope, p.page, columns, rows)


def _performance(store: EventStore, scope: Scope, p: MetricParams) -> Any:
    return performance(store, scope, p.limit)


METRICS: dict[MetricKind, Metric] = {
    MetricKind.active: _active,
    MetricKind.mau_report: _mau_report,
    MetricKind.retention: _retention,
    MetricKind.day_retention: _day_retention,
    MetricKind.lifecycle: _lifecycle,
    MetricKind.stickiness: _stickiness,
    MetricKind.funnel: _funnel,
    MetricKind.exits: _exits,
    MetricKind.paths: _paths,
    MetricKind.features: _features,
    MetricKind.dwell: _dwell,
    MetricKind.heatmap: _heatmap,
    MetricKind.performance: _performance,
}


# the metrics that break persons down by a profile attribute, given the persons' values
BY_PROFILE: dict[MetricKind, Callable[[EventStore, Scope, MetricParams, pa.Table], Any]] = {
    MetricKind.retention: _retention,
    MetricKind.funnel: _funnel,
}


def profile_values(store: EventStore, state: sa.Engine | None, app: App, name: str) -> pa.Table:
    """(person_id, value) of profile attribute `name`, after reading the `$set` events not
    read yet; AnalyticsError when no profile has the attribute."""
    if state is None:
        raise AnalyticsError("a profile breakdown reads the state store; none was given")
    sync_attributes(store, state, app.app_id, datetime.now(UTC))
    values = person_attribute_values(state, app.app_id, name)
    if values.num_rows == 0:
        known = attribute_names(state, app.app_id)
        listed = ", ".join(known[:20]) + (" …" if len(known) > 20 else "") if known else "none yet"
        raise AnalyticsError(
            f"breakdown: no profile has attribute {name!r}; the app's attributes: {listed}"
        )
    return values


def app_today(app: App) -> date:
    return datetime.now(ZoneInfo(app.timezone)).date()


def compute(
    store: EventStore, app: App, kind: str, params: MetricParams, state: sa.Engine | None = None
) -> Any:
    """Metric `kind` of `app` as JSON-ready data; AnalyticsError if it cannot be computed.
    A breakdown by a profile attribute reads the profiles from `state`."""
    if kind not in METRICS:
        raise AnalyticsError(f"unknown metric {kind!r}; choose one of {', '.join(METRICS)}")
    scope = resolve_scope(store, app, params, app_today(app))
    attribute = profile_attribute(params.breakdown)
    if attribute is not None and MetricKind(kind) in BY_PROFILE:
        values = profile_values(store, state, app, attribute)
        result = BY_PROFILE[MetricKind(kind)](store, scope, params, values)
    else:
        result = METRICS[MetricKind(kind)](store, scope, params)
    return to_jsonable_python(_plain(result))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value
