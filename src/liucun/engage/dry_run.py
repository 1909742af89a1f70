"""A campaign's dry run against past events: who it would reach on a past day, how many are
left out (global control) or held out, what the treatment arm would cost against the budget
and how many messages it would ask for — writing nothing.

Targets on app-local day D: a trigger's due users on D (event-store triggers read the events
up to D; state-store triggers — coupons, points, check-ins, ladder — read the state as it is
now); a segment's rule evaluated as of D (engage/segments.py `find_segment` +
`evaluate_rule`); listed users as listed.
Messages: what the sending module would decide for each treated user now (consent credits,
caps, quiet hours; `preview_sends`, which takes nothing), counted by status, skips by reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.engage.actions import ActionContext, campaign_programme, cost_fen, coupon_for
from liucun.engage.campaigns import Campaign, find_campaign
from liucun.engage.holdout import arm_of, in_global_control
from liucun.engage.runner import resolve_targets, trigger_context
from liucun.engage.segments import evaluate_rule, find_segment
from liucun.engage.sending import SendRequest, preview_sends
from liucun.engage.triggers import Due, TriggerContext, winback_offers
from liucun.loyalty.checkin import short_key
from liucun.state.apps import App
from liucun.warehouse.store import EventStore


@dataclass
class DryRun:
    campaign_id: str
    day: date
    reach: int = 0
    global_control: int = 0
    holdout: int = 0
    treatment: int = 0
    coupons: dict[str, int] = field(default_factory=dict)  # template → coupons
    points: int = 0
    cost_yuan: float = 0.0
    budget_yuan: float | None = None
    max_actions: int | None = None
    within_budget: int = 0  # treatment users the budget covers, in target order
    over_budget: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # status → messages
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _segment_as_of(ctx: TriggerContext, campaign: Campaign, day: date) -> list[Due]:
    segment = find_segment(ctx.engine, ctx.app, campaign.spec.target.name or "")
    users = evaluate_rule(ctx.store, ctx.engine, ctx.app, segment.rule, day)
    return [Due(u) for u in users]


def _targets(ctx: TriggerContext, campaign: Campaign, day: date, moment: datetime) -> list[Due]:
    if campaign.spec.target.kind == "segment":
        return _segment_as_of(ctx, campaign, day)
    return resolve_targets(ctx, campaign, day, moment)


def dry_run(
    store: EventStore,
    engine: sa.Engine,
    app: App,
    ref: str,
    now: datetime,
    day: date | None = None,
) -> DryRun:
    """The campaign's dry run for app-local `day` (default: yesterday), at its scheduled time
    that day (module docstring)."""
    campaign = find_campaign(engine, app.app_id, ref)
    tctx = trigger_context(store, engine, app)
    rules = tctx.playbook.engage.campaigns
    day = day or tctx.prog.day(now) - timedelta(days=1)
    hour, minute = (int(p) for p in campaign.spec.schedule.at.split(":"))
    moment = datetime.combine(day, time(hour, minute), tctx.prog.tz).astimezone(UTC)
    report = DryRun(
        campaign.campaign_id,
        day,
        budget_yuan=None if campaign.budget_fen is None else campaign.budget_fen / 100,
        max_actions=campaign.max_actions,
    )
    targets = _targets(tctx, campaign, day, moment)
    report.reach = len(targets)
    treated = []
    for due in targets:
        if in_global_control(app.app_id, due.user_id, rules.global_control_share):
            report.global_control += 1
        elif arm_of(campaign.campaign_id, due.user_id, campaign.holdout_share) == "holdout":
            report.holdout += 1
        else:
            treated.append(due)
    report.treatment = len(treated)
    action = campaign.spec.action
    if action.offer and campaign.spec.target.name != "churned_high_value":
        offers = winback_offers(tctx, day)
        treated = [Due(d.user_id, {**offers.get(d.user_id, {}), **d.data}) for d in treated]
    ctx = ActionContext(
        campaign, campaign_programme(tctx.prog, rules, tctx.playbook.winback), rules, day, moment
    )
    _cost(report, ctx, campaign, treated)
    if action.message:
        _messages(report, ctx, app, treated, tctx)
    if campaign.spec.target.kind == "trigger" and campaign.spec.target.name in (
        "coupon_expiring",
        "points_expiring",
        "streak_at_risk",
        "ladder_one_visit_away",
    ):
        report.notes.append("state_store_trigger_reads_current_state")
    return report


def _cost(report: DryRun, ctx: ActionContext, campaign: Campaign, treated: list[Due]) -> None:
    spent, actions = campaign.spent_fen, campaign.actions
    total = 0
    for due in treated:
        template = coupon_for(ctx, due.data)
        if (
            campaign.spec.action.offer
            and template is None
            and campaign.spec.action.kinds == ["offer"]
        ):
            continue  # no offer fits the user: nothing to give
        cost = cost_fen(ctx, template)
        total += cost
        if template is not None:
            report.coupons[template] = report.coupons.get(template, 0) + 1
        report.points += campaign.spec.action.points
        fits = (campaign.budget_fen is None or spent + cost <= campaign.budget_fen) and (
            campaign.max_actions is None or actions < campaign.max_actions
        )
        if fits:
            spent, actions = spent + cost, actions + 1
            report.within_budget += 1
        else:
            report.over_budget += 1
    report.cost_yuan = total / 100


def _messages(
    report: DryRun, ctx: ActionContext, app: App, treated: list[Due], tctx: TriggerContext
) -> None:
    requests = [
        SendRequest(
            user_id=d.user_id,
            scenario=ctx.campaign.spec.action.message or "",
            key=short_key("campaign", ctx.campaign.campaign_id, d.user_id, ctx.day.isoformat()),
            campaign_id=ctx.campaign.campaign_id,
            data=d.data,
        )
        for d in treated
    ]
    for decision in preview_sends(
        tctx.engine, app, tctx.playbook.engage.messages, requests, ctx.now
    ):
        status = str(decision.status)
        report.messages[status] = report.messages.get(status, 0) + 1
        if decision.reason:
            why = f"{status}:{decision.reason}"
            report.messages[why] = report.messages.get(why, 0) + 1
