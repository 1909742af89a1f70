"""Campaign routes (docs/campaigns.md): admin `/admin/v1/apps/{app}/campaigns/...` with an
admin token — list, create, show, launch, pause, end, dry-run, run, results — and the client
`GET /v1/engage/banners` with a user token (as `/v1/loyalty/...` authenticates).

Refusals answer `{"detail": {"code", "message", "zh"}}`: unknown_campaign, unknown_flow (404),
campaign_exists, bad_status, not_active, outside_dates, segments_unavailable (409),
bad_campaign, bad_dates (422).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.routes.loyalty_deps import ClientDep
from liucun.api.schemas import ERRORS
from liucun.engage import campaigns as cm
from liucun.engage.banners import user_banners
from liucun.engage.dry_run import dry_run
from liucun.engage.results import campaign_results
from liucun.engage.runner import run_campaign

router = APIRouter(tags=["engage"])

ADMIN = "/admin/v1/apps/{app}/campaigns"
CampaignRef = Annotated[
    str, Path(min_length=1, max_length=100, description="The campaign's id or name.")
]
Status = Literal["draft", "active", "paused", "ended"]


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    flow: str | None = Field(description="The playbook flow it was made from.")
    status: Status
    target: dict[str, Any] = Field(description="kind: segment, trigger or users.")
    action: dict[str, Any] = Field(description="coupon, points, offer, message, banner.")
    schedule: dict[str, Any] = Field(description="kind once|daily, at HH:MM app-local.")
    repeat_after_days: int | None
    holdout_share: float
    conversion_event: str
    window_days: int
    starts_on: date | None
    ends_on: date | None
    budget_yuan: float | None
    max_actions: int | None
    spent_yuan: float
    actions: int
    last_run_day: date | None
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None


class CampaignCreate(BaseModel):
    flow: str | None = Field(
        default=None, max_length=40, description="Make it from this playbook flow."
    )
    spec: dict[str, Any] | None = Field(
        default=None, description="A campaign spec (docs/campaigns.md#specs), without a flow."
    )
    name: str | None = Field(default=None, max_length=100, description="Overrides the flow's.")
    budget_yuan: float | None = Field(default=None, description="Overrides the flow's.")
    starts_on: date | None = Field(default=None, description="First app-local day it runs.")
    ends_on: date | None = Field(default=None, description="Last app-local day it runs.")


class DryRunIn(BaseModel):
    day: date | None = Field(
        default=None, alias="date", description="App-local day (default: yesterday)."
    )


class Banner(BaseModel):
    campaign_id: str
    campaign: str
    payload: dict[str, Any]
    since: datetime


def _found(runtime: Any, token: str, app: str) -> Any:
    return admin_app(runtime, token, app)


@router.get(ADMIN, response_model=list[CampaignOut], responses=ERRORS, summary="Campaigns")
def get_campaigns(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    status: Annotated[Status | None, Query(description="Only campaigns in this status.")] = None,
) -> list[dict[str, Any]]:
    found = _found(runtime, token, app)
    return [c.as_json() for c in cm.list_campaigns(runtime.state, found.app_id, status)]


@router.post(
    ADMIN,
    response_model=CampaignOut,
    status_code=201,
    responses=ERRORS,
    summary="Create a draft campaign from a playbook flow or a spec",
)
def post_campaign(
    app: str, body: CampaignCreate, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    found = _found(runtime, token, app)
    now = runtime.clock()
    if (body.flow is None) == (body.spec is None):
        raise cm.CampaignError(
            "bad_campaign",
            "send `flow` (a playbook flow) or `spec` (a campaign spec), one of them",
            "请提供 flow(运营手册中的流程)或 spec(活动设置)之一",
            422,
        )
    if body.flow is not None:
        made = cm.create_from_flow(
            runtime.state,
            found,
            body.flow,
            now,
            body.starts_on,
            body.ends_on,
            name=body.name,
            budget_yuan=body.budget_yuan,
        )
    else:
        raw = dict(body.spec or {})
        raw.update(
            {
                k: v
                for k, v in {"name": body.name, "budget_yuan": body.budget_yuan}.items()
                if v is not None
            }
        )
        spec = cm.parse_spec(raw)
        made = cm.create_campaign(runtime.state, found, spec, now, body.starts_on, body.ends_on)
    return made.as_json()


@router.get(
    ADMIN + "/{campaign}", response_model=CampaignOut, responses=ERRORS, summary="A campaign"
)
def get_campaign(
    app: str, campaign: CampaignRef, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    found = _found(runtime, token, app)
    return cm.find_campaign(runtime.state, found.app_id, campaign).as_json()


def _status_route(verb: str, summary: str) -> None:
    def change(
        app: str, campaign: CampaignRef, runtime: RuntimeDep, token: AdminToken
    ) -> dict[str, Any]:
        found = _found(runtime, token, app)
        return cm.change_status(
            runtime.state, found.app_id, campaign, verb, runtime.clock()
        ).as_json()

    change.__name__ = f"post_campaign_{verb}"
    router.post(
        ADMIN + "/{campaign}/" + verb, response_model=CampaignOut, responses=ERRORS, summary=summary
    )(change)


_status_route("launch", "Launch a draft or resume a paused campaign (409 bad_status)")
_status_route("pause", "Pause an active campaign (409 bad_status)")
_status_route("end", "End a campaign for good (409 bad_status)")


@router.post(
    ADMIN + "/{campaign}/dry-run",
    response_model=dict[str, Any],
    responses=ERRORS,
    summary="Reach, holdout, messages and cost against a past day, writing nothing",
)
def post_dry_run(
    app: str, campaign: CampaignRef, body: DryRunIn, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    found = _found(runtime, token, app)
    return dry_run(
        runtime.store, runtime.state, found, campaign, runtime.clock(), body.day
    ).as_json()


@router.post(
    ADMIN + "/{campaign}/run",
    response_model=dict[str, Any],
    responses=ERRORS,
    summary="Run an active campaign now (a re-run acts on nobody twice)",
)
def post_run(
    app: str, campaign: CampaignRef, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    found = _found(runtime, token, app)
    return run_campaign(runtime.store, runtime.state, found, campaign, runtime.clock()).as_json()


@router.get(
    ADMIN + "/{campaign}/results",
    response_model=dict[str, Any],
    responses=ERRORS,
    summary="Treatment against holdout: conversion, revisits, spend, lift with CIs, SRM",
)
def get_results(
    app: str, campaign: CampaignRef, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    found = _found(runtime, token, app)
    return campaign_results(
        runtime.store, runtime.state, found, campaign, runtime.clock()
    ).as_json()


@router.get(
    "/v1/engage/banners",
    response_model=list[Banner],
    responses=ERRORS,
    summary="The banners of the campaigns that acted on the user",
)
def get_banners(user: ClientDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    return user_banners(runtime.state, user.prog, user.user_id, user.now)
