"""Loyalty routes: points and the member's summary (client `/v1/loyalty/...`, admin
`/admin/v1/apps/{app}/loyalty/...`), and the app's signing keys for user tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.routes.loyalty_deps import ClientDep, KeyDep, admin_programme
from liucun.api.schemas import ERRORS
from liucun.loyalty.members import USER_ID_MAX
from liucun.loyalty.pending import queue_state
from liucun.loyalty.points import (
    MAX_POINTS,
    adjust_points,
    award_points,
    journal_of,
    points_summary,
    spend_points,
)
from liucun.loyalty.summary import member_summary
from liucun.loyalty.tokens import create_signing_key, retire_signing_key, signing_keys

router = APIRouter(tags=["loyalty"])
ADMIN = "/admin/v1/apps/{app}/loyalty"
UserPath = Annotated[str, Path(min_length=1, max_length=USER_ID_MAX)]


class PointsOut(BaseModel):
    user_id: str
    balance: int = Field(description="Journal credits less debits.")
    available: int = Field(description="Points that can be spent now (unexpired).")
    debt: int = Field(description="Points reversed beyond the balance, paid by later awards.")
    next_expiry: datetime | None = Field(description="When the next points expire.")
    next_expiry_points: int


class JournalRow(BaseModel):
    entry_id: int
    kind: str = Field(description="earn, spend, expire, reverse or adjust.")
    debit: str = Field(description="The account the points left.")
    credit: str = Field(description="The account the points went to.")
    points: int
    rule: str | None
    playbook_revision: int | None
    event_id: str | None
    order_id: str | None
    reason: str | None
    created_at: datetime
    operation_key: str


class Moved(BaseModel):
    user_id: str
    points: int
    balance: int
    replayed: bool = Field(description="True when the key was used before: nothing changed.")


class PointsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=USER_ID_MAX)
    points: int = Field(ge=1, le=MAX_POINTS)
    reason: str = Field(min_length=1, max_length=500)


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=USER_ID_MAX)
    delta: int = Field(ge=-MAX_POINTS, le=MAX_POINTS, description="Points in (> 0) or out (< 0).")
    reason: str = Field(min_length=1, max_length=500)


class SigningKeyOut(BaseModel):
    key_id: str
    secret: str | None = Field(description="Shown once, when the key is created.")
    created_at: datetime
    retired_at: datetime | None


@router.get("/v1/loyalty/me", responses=ERRORS, summary="My points, level, benefits, member day")
def get_me(client: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Everything the member page shows: points, level and benefits, today's member day."""
    return member_summary(runtime.state, client.prog, client.user_id, client.now)


@router.get("/v1/loyalty/points", response_model=PointsOut, responses=ERRORS)
def get_points(client: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    return points_summary(runtime.state, client.prog, client.user_id, client.now).as_json()


@router.get("/v1/loyalty/points/journal", response_model=list[JournalRow], responses=ERRORS)
def get_journal(
    client: ClientDep, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """The member's points movements, newest first."""
    return journal_of(runtime.state, client.app.app_id, client.user_id, limit)


def _moved(outcome: Any) -> dict[str, Any]:
    return {**outcome.result, "replayed": outcome.replayed}


@router.post(f"{ADMIN}/points/award", response_model=Moved, responses=ERRORS)
def post_award(
    app: str, body: PointsIn, key: KeyDep, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    """Give a member points (from the `earned` account), once per Idempotency-Key."""
    a = admin_programme(runtime, token, app)
    return _moved(
        award_points(runtime.state, a.prog, body.user_id, body.points, key, a.now, body.reason)
    )


@router.post(f"{ADMIN}/points/spend", response_model=Moved, responses=ERRORS)
def post_spend(
    app: str, body: PointsIn, key: KeyDep, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    """Spend a member's points (e.g. points used as cash on an order your backend took)."""
    a = admin_programme(runtime, token, app)
    return _moved(
        spend_points(runtime.state, a.prog, body.user_id, body.points, key, a.now, body.reason)
    )


@router.post(f"{ADMIN}/points/adjust", response_model=Moved, responses=ERRORS)
def post_adjust(
    app: str, body: AdjustIn, key: KeyDep, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    """A manual correction with a reason (account `adjusted`)."""
    if body.delta == 0:
        raise HTTPException(422, "delta must not be 0")
    a = admin_programme(runtime, token, app)
    return _moved(
        adjust_points(runtime.state, a.prog, body.user_id, body.delta, key, a.now, body.reason)
    )


@router.get(f"{ADMIN}/members/{{user_id}}", responses=ERRORS)
def get_member(
    app: str, user_id: UserPath, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    """A member as the operator sees it: the summary and the latest journal rows."""
    a = admin_programme(runtime, token, app)
    return {
        **member_summary(runtime.state, a.prog, user_id, a.now),
        "journal": journal_of(runtime.state, a.app.app_id, user_id, 50),
    }


@router.post(
    f"{ADMIN}/signing-keys", response_model=SigningKeyOut, status_code=201, responses=ERRORS
)
def post_signing_key(app: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    """A new key for your backend to sign user tokens with; the secret is shown only now."""
    a = admin_app(runtime, token, app)
    return create_signing_key(runtime.state, a.app_id, runtime.clock()).__dict__


@router.get(f"{ADMIN}/signing-keys", response_model=list[SigningKeyOut], responses=ERRORS)
def get_signing_keys(app: str, runtime: RuntimeDep, token: AdminToken) -> list[dict[str, Any]]:
    a = admin_app(runtime, token, app)
    return [k.__dict__ for k in signing_keys(runtime.state, a.app_id)]


@router.delete(f"{ADMIN}/signing-keys/{{key_id}}", status_code=204, responses=ERRORS)
def delete_signing_key(
    app: str,
    key_id: Annotated[str, Path(max_length=32)],
    runtime: RuntimeDep,
    token: AdminToken,
) -> None:
    """Retire a key: tokens it signed are refused (within 30 s on every server)."""
    a = admin_app(runtime, token, app)
    if not retire_signing_key(runtime.state, a.app_id, key_id, runtime.clock()):
        raise HTTPException(404, f"app {a.name!r} has no live signing key {key_id!r}")


class PendingOut(BaseModel):
    batches: int = Field(description="Batches whose loyalty reactions have not run yet.")
    events: int
    oldest_received_at: datetime | None
    failing: int = Field(description="Of them, batches whose reactions failed and wait to retry.")
    last_error: str | None


@router.get(f"{ADMIN}/pending", response_model=PendingOut, responses=ERRORS)
def get_pending(app: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    """The app's ingested events still waiting for their loyalty reactions (normally none for
    more than a second or two; `failing` and `last_error` say when something is wrong)."""
    a = admin_app(runtime, token, app)
    return queue_state(runtime.state, a.app_id).as_json()
