"""Campaigns in the state store: created as drafts from a spec or a playbook flow, launched,
paused, ended; the budget taken and given back by conditional UPDATEs.

A campaign (playbook/campaigns.py `CampaignSpec`) targets a segment, a trigger or a list of
users; gives each treatment user an action (coupon, points, a win-back offer, a message, a
banner); runs once or daily at an app-local time between its start and end dates; and keeps
a holdout (`holdout_share`, fixed at creation, default the playbook's) that gets nothing.

Statuses: draft → active (launch) ⇄ paused (pause / launch) → ended (end, or its end date
passed). Only active campaigns run. The budget (`budget_fen`, `max_actions`) holds across
processes: one conditional UPDATE raises `spent_fen` and `actions` only while both still
allow the action (`take_budget`), never a read then a write.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from liucun.loyalty.coupons import to_fen, to_yuan
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.members import as_utc, insert_ignoring_conflicts
from liucun.playbook.campaigns import CampaignRules, CampaignSpec
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.state.db import write_transaction
from liucun.state.tables import campaigns

STATUSES = ("draft", "active", "paused", "ended")
# what each verb may change a status from, and to
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "launch": (("draft", "paused"), "active"),
    "pause": (("active",), "paused"),
    "end": (("draft", "active", "paused"), "ended"),
}


class CampaignError(LoyaltyError):
    """A refused campaign request: a stable `code`, an HTTP `status`, English and Chinese
    messages (the API answers it as loyalty's refusals: `{"detail": {code, message, zh}}`)."""


def not_found(campaign_ref: str) -> CampaignError:
    return CampaignError(
        "unknown_campaign",
        f"no campaign {campaign_ref!r} in this app",
        f"该应用中没有活动 {campaign_ref!r}",
        status=404,
    )


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    app_id: str
    name: str
    flow: str | None
    spec: CampaignSpec
    status: str
    holdout_share: float
    conversion_event: str
    window_days: int
    starts_on: date | None
    ends_on: date | None
    budget_fen: int | None
    max_actions: int | None
    spent_fen: int
    actions: int
    last_run_day: date | None
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "name": self.name,
            "flow": self.flow,
            "status": self.status,
            "target": self.spec.target.model_dump(exclude_none=True),
            "action": self.spec.action.model_dump(exclude_defaults=True),
            "schedule": self.spec.schedule.model_dump(),
            "repeat_after_days": self.spec.repeat_after_days,
            "holdout_share": self.holdout_share,
            "conversion_event": self.conversion_event,
            "window_days": self.window_days,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "budget_yuan": to_yuan(self.budget_fen),
            "max_actions": self.max_actions,
            "spent_yuan": to_yuan(self.spent_fen),
            "actions": self.actions,
            "last_run_day": self.last_run_day,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "launched_at": self.launched_at,
        }


def campaign_of(row: Any) -> Campaign:
    values = dict(row)
    values["spec"] = CampaignSpec.model_validate_json(values["spec"])
    for key in ("created_at", "updated_at", "launched_at"):
        if values[key] is not None:
            values[key] = as_utc(values[key])
    for key in ("budget_fen", "max_actions", "spent_fen", "actions"):
        if values[key] is not None:
            values[key] = int(values[key])
    return Campaign(**values)


def campaign_rules(engine: sa.Engine, app_id: str) -> CampaignRules:
    return playbook_in_force(engine, app_id).playbook.engage.campaigns


def parse_spec(raw: dict[str, Any]) -> CampaignSpec:
    """`raw` as a campaign spec; 422 `bad_campaign` saying what is wrong otherwise."""
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise CampaignError(
            "bad_campaign", f"invalid campaign: {problems}", f"活动设置无效:{problems}", 422
        ) from None


def _check_dates(starts_on: date | None, ends_on: date | None) -> None:
    if starts_on and ends_on and ends_on < starts_on:
        raise CampaignError(
            "bad_dates",
            f"the end date {ends_on} is before the start date {starts_on}",
            f"结束日期 {ends_on} 早于开始日期 {starts_on}",
            422,
        )


def create_campaign(
    engine: sa.Engine,
    app: App,
    spec: CampaignSpec,
    now: datetime,
    starts_on: date | None = None,
    ends_on: date | None = None,
    flow: str | None = None,
) -> Campaign:
    """A new draft campaign; the playbook's holdout share, conversion event and window fill
    what the spec leaves out (and stay fixed: results compare what was assigned under them).
    409 `campaign_exists` if the app has a campaign of that name."""
    _check_dates(starts_on, ends_on)
    rules = campaign_rules(engine, app.app_id)
    campaign_id = "cmp_" + secrets.token_hex(8)
    row = {
        "campaign_id": campaign_id,
        "app_id": app.app_id,
        "name": spec.name,
        "flow": flow,
        "spec": spec.model_dump_json(),
        "status": "draft",
        "holdout_share": rules.holdout_share if spec.holdout_share is None else spec.holdout_share,
        "conversion_event": spec.conversion_event or rules.conversion_event,
        "window_days": spec.window_days or rules.window_days,
        "starts_on": starts_on,
        "ends_on": ends_on,
        "budget_fen": None if spec.budget_yuan is None else to_fen(spec.budget_yuan),
        "max_actions": spec.max_actions,
        "spent_fen": 0,
        "actions": 0,
        "last_run_day": None,
        "created_at": now,
        "updated_at": now,
        "launched_at": None,
    }
    with write_transaction(engine) as conn:
        if not insert_ignoring_conflicts(conn, campaigns, row):
            raise CampaignError(
                "campaign_exists",
                f"the app already has a campaign named {spec.name!r}",
                f"已有名为 {spec.name!r} 的活动",
            )
    return find_campaign(engine, app.app_id, campaign_id)


def create_from_flow(
    engine: sa.Engine,
    app: App,
    flow_name: str,
    now: datetime,
    starts_on: date | None = None,
    ends_on: date | None = None,
    **overrides: Any,
) -> Campaign:
    """A draft campaign made from the playbook's flow `flow_name` (404 `unknown_flow`);
    `overrides` replace spec fields (a name, a budget)."""
    flow = campaign_rules(engine, app.app_id).flow(flow_name)
    if flow is None:
        raise CampaignError(
            "unknown_flow",
            f"no flow named {flow_name!r} in the playbook in force",
            f"当前运营手册中没有名为 {flow_name!r} 的流程",
            status=404,
        )
    raw = flow.model_dump(exclude={"flow", "zh", "en"})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    spec = parse_spec(raw)
    return create_campaign(engine, app, spec, now, starts_on, ends_on, flow_name)


def find_campaign(engine: sa.Engine, app_id: str, ref: str) -> Campaign:
    """The app's campaign with id or name `ref`; 404 `unknown_campaign` otherwise."""
    c = campaigns.c
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(campaigns).where(
                    c.app_id == app_id, sa.or_(c.campaign_id == ref, c.name == ref)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise not_found(ref)
    return campaign_of(row)


def list_campaigns(engine: sa.Engine, app_id: str, status: str | None = None) -> list[Campaign]:
    """The app's campaigns, newest first (only those of `status`, if given)."""
    c = campaigns.c
    query = sa.select(campaigns).where(c.app_id == app_id)
    if status is not None:
        query = query.where(c.status == status)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(c.created_at.desc(), c.campaign_id)).mappings().all()
    return [campaign_of(r) for r in rows]


def change_status(engine: sa.Engine, app_id: str, ref: str, verb: str, now: datetime) -> Campaign:
    """Apply `verb` (launch, pause, end) by one conditional UPDATE: 409 `bad_status` when the
    campaign's status does not allow it (two operators at once: one wins)."""
    allowed, new = TRANSITIONS[verb]
    campaign = find_campaign(engine, app_id, ref)
    c = campaigns.c
    values: dict[str, Any] = {"status": new, "updated_at": now}
    if verb == "launch" and campaign.launched_at is None:
        values["launched_at"] = now
    with write_transaction(engine) as conn:
        changed = conn.execute(
            campaigns.update()
            .where(c.campaign_id == campaign.campaign_id, c.status.in_(allowed))
            .values(**values)
        ).rowcount
    if changed != 1:
        current = find_campaign(engine, app_id, campaign.campaign_id).status
        raise CampaignError(
            "bad_status",
            f"cannot {verb} a campaign that is {current} (only one that is {' or '.join(allowed)})",
            f"活动当前状态为 {current},不能执行该操作",
        )
    return find_campaign(engine, app_id, campaign.campaign_id)


def take_budget(conn: sa.Connection, campaign_id: str, cost_fen: int) -> bool:
    """Count one action costing `cost_fen` against the campaign's budget, unless its money or
    its action count would pass the limit (then False, nothing counted). One conditional
    UPDATE decides, so concurrent runs in any number of processes never pass either."""
    c = campaigns.c
    room = sa.and_(
        sa.or_(c.budget_fen.is_(None), c.spent_fen + cost_fen <= c.budget_fen),
        sa.or_(c.max_actions.is_(None), c.actions < c.max_actions),
    )
    raised = conn.execute(
        campaigns.update()
        .where(c.campaign_id == campaign_id, room)
        .values(spent_fen=c.spent_fen + cost_fen, actions=c.actions + 1)
    )
    return raised.rowcount == 1


def give_back_budget(conn: sa.Connection, campaign_id: str, cost_fen: int, actions: int) -> None:
    """Undo `take_budget` for actions that did not happen (a refused coupon, a skipped
    message)."""
    c = campaigns.c
    conn.execute(
        campaigns.update()
        .where(c.campaign_id == campaign_id)
        .values(spent_fen=c.spent_fen - cost_fen, actions=c.actions - actions)
    )


def claim_run_day(engine: sa.Engine, campaign_id: str, day: date) -> bool:
    """Mark `day` as run for the campaign unless a run already claimed it (True: ours)."""
    c = campaigns.c
    with write_transaction(engine) as conn:
        claimed = conn.execute(
            campaigns.update()
            .where(
                c.campaign_id == campaign_id,
                sa.or_(c.last_run_day.is_(None), c.last_run_day < day),
            )
            .values(last_run_day=day, updated_at=datetime.now(UTC))
        ).rowcount
    return claimed == 1


def spec_json(campaign: Campaign) -> str:
    return json.dumps(campaign.as_json(), default=str, ensure_ascii=False)
