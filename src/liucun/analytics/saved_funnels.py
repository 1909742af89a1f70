"""Funnels saved under a name per app (the seeds' "key path"), kept in the state store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from liucun.analytics.params import (
    FUNNEL_NAME_PATTERN,
    AnalyticsError,
    FunnelOrder,
    MetricParams,
    parse_params,
)
from liucun.state.tables import saved_funnels

NAME_PATTERN = re.compile(FUNNEL_NAME_PATTERN)


@dataclass(frozen=True)
class SavedFunnel:
    name: str
    steps: str
    window: str
    order: FunnelOrder
    breakdown: str | None


def save_funnel(engine: sa.Engine, app_id: str, name: str, params: MetricParams) -> SavedFunnel:
    """Save (or replace) funnel `name` of the app from the funnel options in `params`."""
    if not NAME_PATTERN.match(name):
        raise AnalyticsError(
            f"funnel name {name!r}: use 1–100 letters, digits, '-', '_', '.' and inner spaces"
        )
    if params.steps is None:
        raise AnalyticsError("a funnel needs --steps: 2 or more event names, comma-separated")
    steps = ",".join(params.step_list)
    row = {
        "steps": steps,
        "window": params.window,
        "step_order": params.order.value,
        "breakdown": params.breakdown,
        "updated_at": datetime.now(UTC),
    }
    key = (saved_funnels.c.app_id == app_id) & (saved_funnels.c.name == name)
    with engine.begin() as conn:
        # replace: one statement pair in one transaction, the same on SQLite and PostgreSQL
        conn.execute(sa.delete(saved_funnels).where(key))
        conn.execute(sa.insert(saved_funnels).values(app_id=app_id, name=name, **row))
    return SavedFunnel(name, steps, params.window, params.order, params.breakdown)


def list_funnels(engine: sa.Engine, app_id: str) -> list[SavedFunnel]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(saved_funnels)
            .where(saved_funnels.c.app_id == app_id)
            .order_by(saved_funnels.c.name)
        ).all()
    return [
        SavedFunnel(r.name, r.steps, r.window, FunnelOrder(r.step_order), r.breakdown) for r in rows
    ]


def with_saved_funnel(engine: sa.Engine, app_id: str, params: MetricParams) -> MetricParams:
    """`params` with the steps, window, order and breakdown of saved funnel `params.saved`
    (options given alongside it win)."""
    if params.saved is None:
        return params
    found = {f.name: f for f in list_funnels(engine, app_id)}.get(params.saved)
    if found is None:
        known = ", ".join(f.name for f in list_funnels(engine, app_id)) or "none saved yet"
        raise AnalyticsError(f"no saved funnel {params.saved!r} (funnels: {known})")
    given = params.model_dump(by_alias=True, exclude_unset=True)
    merged = {
        "steps": found.steps,
        "window": found.window,
        "order": found.order.value,
        "breakdown": found.breakdown,
        **given,
    }
    merged.pop("saved", None)
    return parse_params(merged)
