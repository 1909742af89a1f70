"""Engage routes: consent (client `/v1/engage/consents`, user token), messages, consents and
channel accounts (admin `/admin/v1/apps/{app}/...`, admin token). docs/messages.md.

Refusals answer `{"detail": {"code", "message", "zh"}}` with their status, as loyalty's do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.routes.loyalty_deps import ClientDep, KeyDep
from liucun.api.schemas import ERRORS, ErrorResponse
from liucun.engage import consent as cs
from liucun.engage.caps import usage
from liucun.engage.channels import accounts as acc
from liucun.engage.delivery import deliver_due
from liucun.engage.message_log import find_message, list_messages, message_counts
from liucun.engage.sending import SendRequest, plan_sends
from liucun.playbook.store import playbook_in_force

router = APIRouter(tags=["engage"])
ADMIN = "/admin/v1/apps/{app}"
REFUSED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    422: {"model": ErrorResponse, "description": "Invalid input (the detail says which)."},
}
Answer = Literal["accept", "reject", "ban", "filter"]
Status = Literal["queued", "held", "skipped", "sending", "sent", "refused", "failed"]
ChannelName = Literal["wechat", "alipay", "webhook"]
UserId = Annotated[str, Query(min_length=1, max_length=200)]


class ConsentIn(BaseModel):
    channel: Literal["wechat", "alipay"]
    results: dict[Annotated[str, Field(min_length=1, max_length=128)], Answer] = Field(
        description="Template id → the user's answer, as wx/my.requestSubscribeMessage gave it "
        "(at most 3 templates a prompt).",
        min_length=1,
        max_length=3,
    )
    keep_choice: bool = Field(
        default=False, description='"Always keep this choice" was ticked (总是保持以上选择).'
    )
    recipient: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The user's openid (WeChat) or Alipay user id / open id; default: the user id.",
    )


class SubscriptionOut(BaseModel):
    channel: str
    template_id: str
    credits: int = Field(description="One-time sends left (one per accept; they stack).")
    long_term: bool
    status: str = Field(description="none, accepted, rejected, always_rejected, banned or revoked.")
    accepted: int = Field(description="Accepts recorded in all.")
    recipient: str | None
    updated_at: datetime


class ConsentOut(BaseModel):
    channel: str
    subscriptions: list[SubscriptionOut]


class ConsentRecord(BaseModel):
    channel: str
    template_id: str
    result: str
    keep_choice: bool
    subscription: str
    recorded_at: datetime


class UserConsents(BaseModel):
    user_id: str
    subscriptions: list[SubscriptionOut]
    history: list[ConsentRecord]
    caps_used: dict[str, int] = Field(description="Messages counted per day / month.")


class DeliveryOut(BaseModel):
    attempt: int
    attempted_at: datetime
    outcome: str
    http_status: int | None
    code: str | None
    latency_ms: int | None
    error: str | None


class MessageOut(BaseModel):
    key: str
    user_id: str
    scenario: str
    campaign_id: str | None
    status: str
    reason: str | None
    channel: str | None
    template_id: str | None
    page: str | None
    data: dict[str, str] | None
    credit: str | None
    decided_at: datetime
    send_after: datetime | None
    attempts: int
    finished_at: datetime | None
    error: str | None


class MessageDetail(MessageOut):
    deliveries: list[DeliveryOut]


class SendIn(BaseModel):
    user_id: Annotated[str, Field(min_length=1, max_length=200)]
    scenario: Annotated[str, Field(min_length=1, max_length=40)]
    key: Annotated[str, Field(min_length=1, max_length=200)]
    campaign_id: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    data: dict[str, str | int | float] = Field(default_factory=dict, max_length=50)
    page: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class SendBatch(BaseModel):
    requests: list[SendIn] = Field(min_length=1, max_length=10_000)


class DecisionOut(BaseModel):
    key: str
    user_id: str
    status: str
    reason: str | None
    send_after: datetime | None
    channel: str | None
    replayed: bool


class DeliveryReportOut(BaseModel):
    claimed: int
    sent: int
    refused: int
    failed: int
    requeued: int
    attempts: int
    by_channel: dict[str, int]


class AccountIn(BaseModel):
    settings: dict[str, str] = Field(default_factory=dict, max_length=10)
    secrets: dict[str, str] = Field(
        default_factory=dict,
        max_length=10,
        description="Stored, never shown; left out: the stored ones are kept.",
    )


class AccountOut(BaseModel):
    channel: str
    settings: dict[str, str]
    secrets_set: list[str] = Field(description="Names of the secrets that are set.")
    updated_at: datetime


# ----------------------------------------------------------------------------------- client


@router.post(
    "/v1/engage/consents",
    response_model=ConsentOut,
    responses=REFUSED,
    summary="Record the user's answers to a subscribe-message prompt",
)
def post_consents(body: ConsentIn, user: ClientDep, runtime: RuntimeDep, key: KeyDep) -> Any:
    """Send what wx.requestSubscribeMessage / my.requestSubscribeMessage answered. Each accept
    of a one-time template is one send credit (credits stack). Refused: bad_consent_results,
    bad_template_id, bad_recipient (422), idempotency_key_reused (409)."""
    rules = playbook_in_force(runtime.state, user.app.app_id).playbook.engage.messages
    done = cs.record_consent(
        runtime.state,
        user.app.app_id,
        rules,
        user.user_id,
        body.channel,
        dict(body.results),
        body.keep_choice,
        key,
        user.now,
        body.recipient,
    )
    return done.result


@router.get(
    "/v1/engage/consents",
    response_model=list[SubscriptionOut],
    responses=REFUSED,
    summary="The user's subscriptions: credits and stance per template",
)
def get_consents(user: ClientDep, runtime: RuntimeDep) -> Any:
    return cs.subscriptions_of(runtime.state, user.app.app_id, user.user_id)


# ------------------------------------------------------------------------------------ admin


@router.get(
    f"{ADMIN}/consents",
    response_model=UserConsents,
    responses=REFUSED,
    summary="A user's subscriptions, consent history and cap counts",
)
def get_user_consents(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    user_id: UserId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    found = admin_app(runtime, token, app)
    return {
        "user_id": user_id,
        "subscriptions": cs.subscriptions_of(runtime.state, found.app_id, user_id),
        "history": cs.consent_history(runtime.state, found.app_id, user_id, limit),
        "caps_used": usage(runtime.state, found.app_id, user_id),
    }


@router.get(
    f"{ADMIN}/messages",
    response_model=list[MessageOut],
    responses=REFUSED,
    summary="Messages, newest first",
)
def get_messages(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    status: Annotated[Status | None, Query(description="Only messages in this state.")] = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    campaign_id: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    found = admin_app(runtime, token, app)
    return list_messages(runtime.state, found.app_id, status, user_id, campaign_id, limit)


@router.get(
    f"{ADMIN}/messages/counts",
    response_model=dict[str, int],
    responses=REFUSED,
    summary="Messages per status, and skipped ones per reason",
)
def get_message_counts(app: str, runtime: RuntimeDep, token: AdminToken) -> Any:
    found = admin_app(runtime, token, app)
    return message_counts(runtime.state, found.app_id)


@router.get(
    f"{ADMIN}/messages/{{key}}",
    response_model=MessageDetail,
    responses=REFUSED,
    summary="A message with every delivery attempt",
)
def get_message(
    app: str,
    key: Annotated[str, Path(min_length=1, max_length=200)],
    runtime: RuntimeDep,
    token: AdminToken,
) -> Any:
    found = admin_app(runtime, token, app)
    message = find_message(runtime.state, found.app_id, key)
    if message is None:
        raise HTTPException(404, f"no message with key {key!r}")
    return message


@router.post(
    f"{ADMIN}/messages",
    response_model=list[DecisionOut],
    responses=REFUSED,
    summary="Decide and queue scenario messages (consent, caps, quiet hours)",
)
def post_messages(app: str, body: SendBatch, runtime: RuntimeDep, token: AdminToken) -> Any:
    """Each request is decided once per key: queued, held (quiet hours) or skipped with the
    reason; the same key again answers the first decision."""
    found = admin_app(runtime, token, app)
    rules = playbook_in_force(runtime.state, found.app_id).playbook.engage.messages
    requests = [
        SendRequest(
            r.user_id,
            r.scenario,
            r.key,
            r.campaign_id,
            {k: str(v) for k, v in r.data.items()},
            r.page,
        )
        for r in body.requests
    ]
    decisions = plan_sends(runtime.state, found, rules, requests, runtime.clock())
    return [d.__dict__ for d in decisions]


@router.post(
    f"{ADMIN}/messages/deliver",
    response_model=DeliveryReportOut,
    responses=REFUSED,
    summary="Send the messages that are due now",
)
def post_deliver(app: str, runtime: RuntimeDep, token: AdminToken) -> Any:
    found = admin_app(runtime, token, app)
    now = runtime.clock()
    report = deliver_due(runtime.state, found, now, settings=runtime.settings, clock=runtime.clock)
    return report.as_json()


@router.get(
    f"{ADMIN}/channels",
    response_model=list[AccountOut],
    responses=REFUSED,
    summary="The app's channel accounts (without secrets)",
)
def get_channels(app: str, runtime: RuntimeDep, token: AdminToken) -> Any:
    found = admin_app(runtime, token, app)
    return acc.channel_accounts(runtime.state, found.app_id)


@router.put(
    f"{ADMIN}/channels/{{channel}}",
    response_model=AccountOut,
    responses=REFUSED,
    summary="Set the app's account on a channel",
)
def put_channel(
    app: str, channel: ChannelName, body: AccountIn, runtime: RuntimeDep, token: AdminToken
) -> Any:
    """wechat: settings appid, miniprogram_state, lang; secret `secret`. alipay: settings
    app_id; secrets private_key, alipay_public_key (PEM). webhook: settings url; secret
    `secret`. Refused: bad_channel_account (422)."""
    found = admin_app(runtime, token, app)
    return acc.set_account(
        runtime.state, found.app_id, channel, body.settings, body.secrets, runtime.clock()
    )
