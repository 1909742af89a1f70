"""Running a campaign on a day: find the targets, leave out the global control group, assign
arms, act on the treatment arm, plan the messages; and the daily step that runs every active
campaign due that day.

Per target user, in order:
1. in the app's global control group (holdout.py `in_global_control`, the playbook's
   `global_control_share`): left alone, not even assigned;
2. assigned an arm the first time the campaign finds the user (holdout.py `arm_of` with the
   campaign's `holdout_share`), kept in `campaign_assignments` (arm, at); later runs read the
   stored arm;
3. holdout: nothing, ever — the assignment is the only record;
4. treatment: the action, once per action key (actions.py), within the budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.engage.actions import ActionContext, Outcome, act_on, campaign_programme, plan_messages
from liucun.engage.campaigns import (
    Campaign,
    CampaignError,
    campaign_rules,
    change_status,
    claim_run_day,
    find_campaign,
    list_campaigns,
)
from liucun.engage.holdout import arm_of, in_global_control
from liucun.engage.triggers import Due, TriggerContext, due_users, winback_offers
from liucun.loyalty.programme import Programme, programme_of
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.state.db import write_transaction
from liucun.state.tables import campaign_actions, campaign_assignments
from liucun.warehouse.store import EventStore

CHUNK = 500
# users acted on per write transaction: fewer commits, member locks held briefly
BATCH = 50


@dataclass
class RunReport:
    """What one run did: users found, left out, held out, acted on, refused and why."""

    campaign_id: str
    day: date
    targeted: int = 0
    global_control: int = 0
    holdout: int = 0
    treatment: int = 0
    acted: int = 0
    already: int = 0
    not_due_again: int = 0
    budget_exhausted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def trigger_context(store: EventStore, engine: sa.Engine, app: App) -> TriggerContext:
    playbook = playbook_in_force(engine, app.app_id).playbook
    return TriggerContext(store, engine, app, programme_of(engine, app), playbook)


def resolve_targets(ctx: TriggerContext, campaign: Campaign, day: date, now: datetime) -> list[Due]:
    """The campaign's target users on `day`: a segment's current members (engage/segments.py
    `segment_members`), a trigger's due users, or the listed users."""
    target = campaign.spec.target
    if target.kind == "users":
        return [Due(u) for u in target.users or []]
    if target.kind == "trigger":
        return due_users(ctx, target.name or "", day, now)
    from liucun.engage.segments import segment_members

    return [Due(u) for u in segment_members(ctx.engine, ctx.app.app_id, target.name or "")]


def _insert_ignoring(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(table).on_conflict_do_nothing(), rows)


def assign(
    engine: sa.Engine, campaign: Campaign, users: list[str], now: datetime, day: date
) -> dict[str, str]:
    """Each user's arm: the stored one, else drawn now and stored (runner docstring)."""
    arms: dict[str, str] = {}
    a = campaign_assignments.c
    for start in range(0, len(users), CHUNK):
        chunk = users[start : start + CHUNK]
        rows = [
            {
                "campaign_id": campaign.campaign_id,
                "user_id": u,
                "arm": arm_of(campaign.campaign_id, u, campaign.holdout_share),
                "assigned_at": now,
                "assigned_day": day,
            }
            for u in chunk
        ]
        with write_transaction(engine) as conn:
            _insert_ignoring(conn, campaign_assignments, rows)
            stored = conn.execute(
                sa.select(a.user_id, a.arm).where(
                    a.campaign_id == campaign.campaign_id, a.user_id.in_(chunk)
                )
            ).all()
        arms.update({u: arm for u, arm in stored})
    return arms


def _acted_recently(engine: sa.Engine, campaign: Campaign, day: date) -> set[str]:
    """For a repeating campaign: users acted on (or refused) within `repeat_after_days`."""
    every = campaign.spec.repeat_after_days
    if every is None:
        return set()
    a = campaign_actions.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.user_id)
            .where(a.campaign_id == campaign.campaign_id, a.day > day - timedelta(days=every))
            .distinct()
        ).all()
    return {r.user_id for r in rows}


def check_runnable(campaign: Campaign, day: date) -> None:
    if campaign.status != "active":
        raise CampaignError(
            "not_active",
            f"campaign {campaign.name!r} is {campaign.status}: launch it first",
            f"活动 {campaign.name!r} 当前状态为 {campaign.status},请先启动",
        )
    if (campaign.starts_on and day < campaign.starts_on) or (
        campaign.ends_on and day > campaign.ends_on
    ):
        raise CampaignError(
            "outside_dates",
            f"{day} is outside the campaign's dates ({campaign.starts_on} – {campaign.ends_on})",
            f"{day} 不在活动日期范围内({campaign.starts_on} – {campaign.ends_on})",
        )


def run_campaign(
    store: EventStore, engine: sa.Engine, app: App, ref: str, now: datetime
) -> RunReport:
    """Run the active campaign `ref` for the app-local day of `now` (runner docstring).
    Re-running the same day acts on nobody twice."""
    campaign = find_campaign(engine, app.app_id, ref)
    tctx = trigger_context(store, engine, app)
    day = tctx.prog.day(now)
    check_runnable(campaign, day)
    rules = tctx.playbook.engage.campaigns
    report = RunReport(campaign.campaign_id, day)
    targets = resolve_targets(tctx, campaign, day, now)
    report.targeted = len(targets)
    eligible = [
        d
        for d in targets
        if not in_global_control(app.app_id, d.user_id, rules.global_control_share)
    ]
    report.global_control = report.targeted - len(eligible)
    arms = assign(engine, campaign, [d.user_id for d in eligible], now, day)
    treated = [d for d in eligible if arms[d.user_id] == "treatment"]
    report.holdout = len(eligible) - len(treated)
    report.treatment = len(treated)
    recent = _acted_recently(engine, campaign, day)
    action = campaign.spec.action
    if action.offer and campaign.spec.target.name != "churned_high_value":
        offers = winback_offers(tctx, day)
        treated = [Due(d.user_id, {**offers.get(d.user_id, {}), **d.data}) for d in treated]
    ctx = ActionContext(
        campaign,
        campaign_programme(tctx.prog, rules, tctx.playbook.winback),
        rules,
        day,
        now,
    )
    due_now = [d for d in treated if d.user_id not in recent]
    report.not_due_again = len(treated) - len(due_now)
    outcomes = _act(engine, ctx, due_now, report)
    report.messages = plan_messages(
        engine, ctx, app, outcomes, getattr(tctx.playbook.engage, "messages", None)
    )
    return report


def _act(
    engine: sa.Engine, ctx: ActionContext, due_now: list[Due], report: RunReport
) -> list[tuple[Outcome, dict[str, Any]]]:
    """Act on each user, `BATCH` users per write transaction (a savepoint each: one user's
    refusal undoes only that user's action); stop at the budget when every user costs the
    same."""
    outcomes: list[tuple[Outcome, dict[str, Any]]] = []
    for start in range(0, len(due_now), BATCH):
        with write_transaction(engine) as conn:
            for index, due in enumerate(due_now[start : start + BATCH], start):
                outcome = act_on(conn, ctx, due.user_id, due.data)
                _count(report, outcome)
                if outcome.status == "done":
                    outcomes.append((outcome, due.data))
                if outcome.status == "budget_exhausted" and not ctx.campaign.spec.action.offer:
                    # every user costs the same: the rest cannot fit either
                    report.budget_exhausted += len(due_now) - index - 1
                    return outcomes
    return outcomes


def _count(report: RunReport, outcome: Outcome) -> None:
    if outcome.status == "done":
        report.acted += 1
    elif outcome.status == "already":
        report.already += 1
    elif outcome.status == "budget_exhausted":
        report.budget_exhausted += 1
    else:
        reason = outcome.reason or outcome.status
        report.refused[reason] = report.refused.get(reason, 0) + 1


def is_due(campaign: Campaign, prog: Programme, now: datetime) -> bool:
    """Whether the active campaign runs now: within its dates, past its local time, and not
    run yet today (daily) or ever (once)."""
    local = prog.local(now)
    day = local.date()
    if campaign.status != "active":
        return False
    if campaign.starts_on and day < campaign.starts_on:
        return False
    if campaign.ends_on and day > campaign.ends_on:
        return False
    hour, minute = (int(p) for p in campaign.spec.schedule.at.split(":"))
    if local.time() < time(hour, minute):
        return False
    if campaign.spec.schedule.kind == "once":
        return campaign.last_run_day is None
    return campaign.last_run_day is None or campaign.last_run_day < day


def run_due_campaigns(
    store: EventStore, engine: sa.Engine, app: App, now: datetime
) -> dict[str, Any]:
    """The daily step: end the campaigns past their end date, then run each active campaign
    due now, once a day (a run claims its day first, so two schedulers cannot both run it).
    A failing campaign is reported and the others still run."""
    prog = programme_of(engine, app)
    day = prog.day(now)
    out: dict[str, Any] = {"status": "done", "ran": {}, "ended": [], "failed": {}}
    for campaign in list_campaigns(engine, app.app_id):
        if campaign.status in ("active", "paused") and campaign.ends_on and day > campaign.ends_on:
            change_status(engine, app.app_id, campaign.campaign_id, "end", now)
            out["ended"].append(campaign.name)
            continue
        if not is_due(campaign, prog, now) or not claim_run_day(engine, campaign.campaign_id, day):
            continue
        try:
            out["ran"][campaign.name] = run_campaign(
                store, engine, app, campaign.campaign_id, now
            ).as_json()
        except Exception as exc:  # one campaign's fault must not stop the others
            out["failed"][campaign.name] = f"{type(exc).__name__}: {exc}"
    return out


__all__ = ["RunReport", "campaign_rules", "is_due", "run_campaign", "run_due_campaigns"]
