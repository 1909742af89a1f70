"""Triggers: the seeds' scenarios, each a function of an app-local day that returns the users
due that day (with what the message needs to say). Definitions, on app-local day D at `now`:

- `coupon_expiring`: users holding an issued coupon whose last usable day is within the
  loyalty playbook's `coupons.expiry_reminder_days` (loyalty/coupons.py `expiring_coupons`).
- `points_expiring`: users with points (a lot with some left) expiring after `now` and before
  the local midnight that begins day D + `triggers.points_expiring_days`.
- `streak_at_risk`: users who checked in on D − 1 and not (yet) on D.
- `ladder_one_visit_away`: users whose ladder progress in D's month (up to D) is one short of
  a step of the monthly ladder.
- `new_user_day_3`: users first seen (their first event with a user id) on day
  D − (`triggers.new_user_day` − 1): D is their day 3.
- `new_users_first_week`: users first seen on D − (`triggers.new_user_days` − 1) … D.
- `silent_buyers`: users with at least one `order_paid` before the end of D whose last event
  was on a day L with `silent_days` ≤ D − L ≤ `silent_max_days` (seeds: 15 days inactive with
  a purchase history).
- `churned_high_value`: users on the win-back list of D (lifecycle/winback.py) labelled
  churned, with an RFM value of at least `triggers.high_value_min` and an offer.

Event-store triggers read the events of identified users (`user_id`) through the store's SQL
dialect (DuckDB, ClickHouse), as analytics does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.events.standard import ORDER_PAID_EVENT
from liucun.loyalty.coupons import expiring_coupons
from liucun.loyalty.programme import Programme
from liucun.playbook.schema import Playbook
from liucun.state.apps import App
from liucun.state.tables import checkins, points_lots, visit_days
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class Due:
    """A user a trigger found due, with facts for the action and the message."""

    user_id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerContext:
    store: EventStore
    engine: sa.Engine
    app: App
    prog: Programme
    playbook: Playbook


def _utc_start(prog: Programme, day: date) -> datetime:
    return prog.start_of(day).astimezone(UTC)


def coupon_expiring(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    found: dict[str, Due] = {}
    for entry in expiring_coupons(ctx.engine, ctx.prog, now):  # soonest first
        if entry["user_id"] not in found:
            coupon = entry["coupon"]
            data = {
                "coupon_id": coupon["coupon_id"],
                "template": coupon["template"],
                "value_yuan": coupon["value_yuan"],
                "days_left": entry["days_left"],
            }
            found[entry["user_id"]] = Due(entry["user_id"], data)
    return sorted(found.values(), key=lambda d: d.user_id)


def points_expiring(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    days = ctx.playbook.engage.campaigns.triggers.points_expiring_days
    until = _utc_start(ctx.prog, day + timedelta(days=days))
    lot = points_lots.c
    query = (
        sa.select(lot.user_id, sa.func.sum(lot.remaining), sa.func.min(lot.expires_at))
        .where(
            lot.app_id == ctx.app.app_id,
            lot.remaining > 0,
            lot.expires_at > now,
            lot.expires_at <= until,
        )
        .group_by(lot.user_id)
        .order_by(lot.user_id)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Due(user, {"points": int(points), "expires_at": str(first)}) for user, points, first in rows
    ]


def streak_at_risk(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    c = checkins.c
    today = sa.select(c.user_id).where(c.app_id == ctx.app.app_id, c.day == day)
    query = (
        sa.select(c.user_id, c.streak)
        .where(c.app_id == ctx.app.app_id, c.day == day - timedelta(days=1))
        .where(c.user_id.not_in(today))
        .order_by(c.user_id)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Due(user, {"streak": int(streak)}) for user, streak in rows]


def ladder_one_visit_away(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    ladder = ctx.prog.rules.ladder
    if not ladder.enabled:
        return []
    v = visit_days.c
    measure = sa.func.count() if ladder.counts == "visit_days" else sa.func.sum(v.visits)
    query = (
        sa.select(v.user_id, measure)
        .where(v.app_id == ctx.app.app_id, v.day >= day.replace(day=1), v.day <= day)
        .group_by(v.user_id)
        .order_by(v.user_id)
    )
    steps = {s.visit - 1: s for s in ladder.steps}
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for user, progress in rows:
        step = steps.get(int(progress))
        if step is not None:
            out.append(Due(user, {"visits": int(progress), "step": step.visit, "zh": step.zh}))
    return out


def _first_seen(ctx: TriggerContext, first: date, last: date) -> list[Due]:
    """Users whose first event with a user id was on a local day in [first, last]."""
    d = ctx.store.dialect
    sql = f"""
    SELECT user_id, min(ts) AS first_ts FROM events
    WHERE app_id = {d.param("app")} AND user_id IS NOT NULL AND ts < {d.param("ts_end")}
    GROUP BY user_id
    HAVING min(ts) >= {d.param("ts_first")}
    ORDER BY user_id
    """
    params = {
        "app": ctx.app.app_id,
        "ts_first": _utc_start(ctx.prog, first),
        "ts_end": _utc_start(ctx.prog, last + timedelta(days=1)),
    }
    rows = ctx.store.query(sql, params).to_pylist()
    return [
        Due(r["user_id"], {"first_day": str(ctx.prog.day(r["first_ts"]))})
        for r in rows
        if r["user_id"]
    ]


def new_user_day_3(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    joined = day - timedelta(days=ctx.playbook.engage.campaigns.triggers.new_user_day - 1)
    return _first_seen(ctx, joined, joined)


def new_users_first_week(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    days = ctx.playbook.engage.campaigns.triggers.new_user_days
    return _first_seen(ctx, day - timedelta(days=days - 1), day)


def silent_buyers(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    rules = ctx.playbook.engage.campaigns.triggers
    d = ctx.store.dialect
    sql = f"""
    SELECT user_id, max(ts) AS last_ts,
           sum(CASE WHEN event = {d.param("order")} THEN 1 ELSE 0 END) AS orders
    FROM events
    WHERE app_id = {d.param("app")} AND user_id IS NOT NULL AND ts < {d.param("ts_end")}
    GROUP BY user_id
    HAVING sum(CASE WHEN event = {d.param("order")} THEN 1 ELSE 0 END) >= 1
       AND max(ts) >= {d.param("active_from")} AND max(ts) < {d.param("active_before")}
    ORDER BY user_id
    """
    params = {
        "app": ctx.app.app_id,
        "order": ORDER_PAID_EVENT,
        "ts_end": _utc_start(ctx.prog, day + timedelta(days=1)),
        # last active day L: D − silent_max_days ≤ L ≤ D − silent_days
        "active_from": _utc_start(ctx.prog, day - timedelta(days=rules.silent_max_days)),
        "active_before": _utc_start(ctx.prog, day - timedelta(days=rules.silent_days - 1)),
    }
    rows = ctx.store.query(sql, params).to_pylist()
    return [
        Due(
            r["user_id"],
            {
                "orders": int(r["orders"]),
                "days_inactive": (day - ctx.prog.day(r["last_ts"])).days,
            },
        )
        for r in rows
        if r["user_id"]
    ]


def identified_users(store: EventStore, app_id: str) -> set[str]:
    """Every user id the app's events carry."""
    d = store.dialect
    sql = f"""
    SELECT DISTINCT user_id FROM events
    WHERE app_id = {d.param("app")} AND user_id IS NOT NULL
    """
    return {r["user_id"] for r in store.query(sql, {"app": app_id}).to_pylist()}


def winback_offers(ctx: TriggerContext, day: date) -> dict[str, dict[str, Any]]:
    """The win-back list of `day` by user id: label, value, reason and offer of each
    identified user on it (persons without a user id cannot be reached)."""
    from liucun.lifecycle.winback import winback_list

    users = identified_users(ctx.store, ctx.app.app_id)
    entries = winback_list(ctx.store, ctx.engine, ctx.app, day, limit=10_000_000)
    return {
        e.person_id: {
            "label": e.label,
            "value": e.value,
            "reason": e.reason,
            "offer": e.offer,
            "days_inactive": e.days_inactive,
        }
        for e in entries
        if e.person_id in users
    }


def churned_high_value(ctx: TriggerContext, day: date, now: datetime) -> list[Due]:
    least = ctx.playbook.engage.campaigns.triggers.high_value_min
    offers = winback_offers(ctx, day)
    return [
        Due(user, data)
        for user, data in sorted(offers.items())
        if data["label"] == "churned" and data["value"] >= least and data["offer"]
    ]


TRIGGERS: dict[str, Callable[[TriggerContext, date, datetime], list[Due]]] = {
    "coupon_expiring": coupon_expiring,
    "points_expiring": points_expiring,
    "streak_at_risk": streak_at_risk,
    "ladder_one_visit_away": ladder_one_visit_away,
    "new_user_day_3": new_user_day_3,
    "new_users_first_week": new_users_first_week,
    "silent_buyers": silent_buyers,
    "churned_high_value": churned_high_value,
}


def due_users(ctx: TriggerContext, trigger: str, day: date, now: datetime) -> list[Due]:
    """The users trigger `trigger` finds due on app-local `day`."""
    return TRIGGERS[trigger](ctx, day, now)
