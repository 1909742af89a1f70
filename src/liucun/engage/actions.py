"""Carrying out a campaign's action for one treatment user, once per action key.

Coupons and points go through loyalty's own path (loyalty/rewards.py `grant_reward`, in a
savepoint so a refused coupon is undone alone) under the member's lock
(loyalty/members.py `lock_member`), in one savepoint with the campaign's action row and its
budget (the runner commits a few users per write transaction): the row's key makes a re-run
give nothing twice, the conditional budget UPDATE (campaigns.py `take_budget`) keeps
concurrent runs within the budget, and a refusal gives the budget back. Messages are planned
afterwards for all users at once through the sending module (engage/sending.py
`plan_sends`), which applies consent, caps and quiet hours.

Costs (fen, against `budget_yuan`): a coupon costs its face value (loyalty/coupons.py
`face_value_fen`), a point `point_value_fen`; messages and banners cost nothing but count as
actions (against `max_actions`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from liucun.engage.campaigns import Campaign, give_back_budget, take_budget
from liucun.loyalty.checkin import short_key
from liucun.loyalty.coupons import face_value_fen, terms_of
from liucun.loyalty.members import insert_ignoring_conflicts, lock_member
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import grant_softly
from liucun.playbook.campaigns import CampaignRules, campaign_coupon_templates, offer_template_name
from liucun.playbook.loyalty import Reward
from liucun.playbook.winback import WinbackRules
from liucun.state.db import write_transaction
from liucun.state.tables import campaign_actions

REWARD_KIND = "campaign"  # loyalty_rewards.kind of what campaigns grant


def campaign_programme(prog: Programme, rules: CampaignRules, winback: WinbackRules) -> Programme:
    """The loyalty programme with the coupons campaigns may give added to its templates
    (`campaign_coupon_templates`). A name loyalty already has keeps loyalty's template."""
    have = {t.name for t in prog.rules.coupons.templates}
    added = [t for t in campaign_coupon_templates(rules, winback) if t.name not in have]
    if not added:
        return prog
    coupons = prog.rules.coupons.model_copy(
        update={"templates": [*prog.rules.coupons.templates, *added]}
    )
    return replace(prog, rules=prog.rules.model_copy(update={"coupons": coupons}))


@dataclass(frozen=True)
class ActionContext:
    campaign: Campaign
    prog: Programme  # campaign_programme
    rules: CampaignRules
    day: date
    now: datetime


@dataclass
class Outcome:
    user_id: str
    status: str  # done refused already budget_exhausted (messages: queued held skipped)
    reason: str | None = None
    cost_fen: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    action_key: str | None = None


class _BudgetExhaustedError(Exception):
    pass


def action_key(ctx: ActionContext, user_id: str) -> str:
    """Once per user, or once per user and day for a campaign that repeats."""
    if ctx.campaign.spec.repeat_after_days is None:
        return short_key("u", user_id)
    return short_key("u", user_id, ctx.day.isoformat())


def reward_key(ctx: ActionContext, user_id: str) -> str:
    if ctx.campaign.spec.repeat_after_days is None:
        return short_key("campaign", ctx.campaign.campaign_id, user_id)
    return short_key("campaign", ctx.campaign.campaign_id, user_id, ctx.day.isoformat())


def coupon_for(ctx: ActionContext, data: dict[str, Any]) -> str | None:
    """The coupon template this user gets: the action's, or the offer's (None: no coupon)."""
    action = ctx.campaign.spec.action
    if action.offer:
        offer = data.get("offer")
        return offer_template_name(offer) if offer else None
    return action.coupon


def cost_fen(ctx: ActionContext, template_name: str | None) -> int:
    """What the action costs the budget for a user getting `template_name` (module doc)."""
    cost = math.ceil(ctx.campaign.spec.action.points * ctx.rules.point_value_fen)
    if template_name is not None:
        template = ctx.prog.rules.template(template_name)
        if template is not None:
            cost += face_value_fen(terms_of(template))
    return cost


def _record(conn: sa.Connection, ctx: ActionContext, key: str, outcome: Outcome) -> None:
    a = campaign_actions.c
    conn.execute(
        campaign_actions.update()
        .where(a.campaign_id == ctx.campaign.campaign_id, a.action_key == key)
        .values(
            status=outcome.status,
            reason=outcome.reason,
            cost_fen=outcome.cost_fen,
            detail=json.dumps(outcome.detail, default=str, ensure_ascii=False),
        )
    )


def act_on(conn: sa.Connection, ctx: ActionContext, user_id: str, data: dict[str, Any]) -> Outcome:
    """Carry out the action's coupon, points and banner for `user_id` in a savepoint of
    `conn`'s write transaction (module docstring); the message part is marked `pending` in
    `detail` for `plan_messages`."""
    action = ctx.campaign.spec.action
    key = action_key(ctx, user_id)
    template = coupon_for(ctx, data)
    nothing_else = not (action.points or action.banner or action.message)
    if action.offer and template is None and nothing_else:
        return Outcome(user_id, "refused", "no_offer", action_key=key)
    cost = cost_fen(ctx, template)
    row = {
        "campaign_id": ctx.campaign.campaign_id,
        "action_key": key,
        "app_id": ctx.campaign.app_id,
        "user_id": user_id,
        "day": ctx.day,
        "status": "done",
        "reason": None,
        "cost_fen": cost,
        "detail": "{}",
        "created_at": ctx.now,
    }
    try:
        with conn.begin_nested():
            if not insert_ignoring_conflicts(conn, campaign_actions, row):
                return Outcome(user_id, "already", action_key=key)
            if not take_budget(conn, ctx.campaign.campaign_id, cost):
                raise _BudgetExhaustedError  # undoes the action row too
            outcome = Outcome(user_id, "done", cost_fen=cost, action_key=key)
            if template is not None or action.points:
                _grant(conn, ctx, user_id, template, outcome)
            if outcome.status == "done":
                if action.banner is not None:
                    outcome.detail["banner"] = True
                if action.message:
                    outcome.detail["message"] = {"scenario": action.message, "status": "pending"}
            _record(conn, ctx, key, outcome)
            return outcome
    except _BudgetExhaustedError:
        return Outcome(user_id, "budget_exhausted", action_key=key)


def _grant(
    conn: sa.Connection,
    ctx: ActionContext,
    user_id: str,
    template: str | None,
    outcome: Outcome,
) -> None:
    action = ctx.campaign.spec.action
    member = lock_member(conn, ctx.prog, user_id, ctx.now)
    reward = Reward(points=action.points, coupon=template)
    granted, code = grant_softly(
        conn,
        ctx.prog,
        member,
        reward,
        reward_key(ctx, user_id),
        REWARD_KIND,
        ctx.now,
        f"campaign {ctx.campaign.name}"[:500],
    )
    if code is not None or granted is None:
        # refused by a loyalty limit (or given before under this key): nothing was spent
        give_back_budget(conn, ctx.campaign.campaign_id, outcome.cost_fen, 1)
        outcome.status, outcome.reason = "refused", code or "granted_before"
        outcome.cost_fen = 0
        return
    if granted.coupon is not None:
        outcome.detail["coupon"] = {
            "coupon_id": granted.coupon["coupon_id"],
            "template": granted.coupon["template"],
            "value_yuan": granted.coupon["value_yuan"],
        }
    if granted.points:
        outcome.detail["points"] = granted.points


def message_data(outcome: Outcome, data: dict[str, Any]) -> dict[str, Any]:
    """What the message template may show: the trigger's facts and the coupon just given."""
    return {**data, **({"coupon": outcome.detail["coupon"]} if "coupon" in outcome.detail else {})}


def plan_messages(
    engine: sa.Engine,
    ctx: ActionContext,
    app: Any,
    outcomes: list[tuple[Outcome, dict[str, Any]]],
    message_rules: Any,
) -> dict[str, int]:
    """Ask the sending module to plan each pending message (consent, caps, quiet hours);
    write each decision into its action row. A message-only action whose message is skipped
    did not happen: its action is given back to the budget. Returns decisions by status."""
    pending = [
        (o, d) for o, d in outcomes if o.detail.get("message", {}).get("status") == "pending"
    ]
    if not pending:
        return {}
    scenario = ctx.campaign.spec.action.message
    decisions = _decide(engine, ctx, app, pending, scenario or "", message_rules)
    only_message = ctx.campaign.spec.action.kinds == ["message"]
    counts: dict[str, int] = {}
    with write_transaction(engine) as conn:
        for outcome, _ in pending:
            status, reason, send_after = decisions[outcome.user_id]
            counts[status] = counts.get(status, 0) + 1
            outcome.detail["message"] = {
                "scenario": scenario,
                "status": status,
                "reason": reason,
                "send_after": send_after,
            }
            if only_message:
                outcome.status, outcome.reason = status, reason
                if status == "skipped":
                    give_back_budget(conn, ctx.campaign.campaign_id, 0, 1)
            assert outcome.action_key is not None
            _record(conn, ctx, outcome.action_key, outcome)
    return counts


def _decide(
    engine: sa.Engine,
    ctx: ActionContext,
    app: Any,
    pending: list[tuple[Outcome, dict[str, Any]]],
    scenario: str,
    message_rules: Any,
) -> dict[str, tuple[str, str | None, str | None]]:
    """user → (status, reason, send_after) from `plan_sends`; every message `skipped` with
    reason `messages_unavailable` where the sending module is not installed."""
    try:
        from liucun.engage.sending import SendRequest, plan_sends
    except ImportError:
        return {o.user_id: ("skipped", "messages_unavailable", None) for o, _ in pending}
    requests = [
        SendRequest(
            user_id=o.user_id,
            scenario=scenario,
            key=short_key("campaign", ctx.campaign.campaign_id, o.user_id, ctx.day.isoformat()),
            campaign_id=ctx.campaign.campaign_id,
            data=message_data(o, d),
        )
        for o, d in pending
    ]
    out = {}
    for decision in plan_sends(engine, app, message_rules, requests, ctx.now):
        after = getattr(decision, "send_after", None)
        out[decision.user_id] = (
            str(decision.status),
            getattr(decision, "reason", None),
            None if after is None else str(after),
        )
    return out
