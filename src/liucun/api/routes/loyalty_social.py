"""Loyalty routes: levels, leaderboards, invites, group buys and help-unlocks (client
`/v1/loyalty/...`, admin `/admin/v1/apps/{app}/loyalty/...`).

Client routes record the caller's `X-Device-Id` header, when sent, as a device the member was
seen on (the invite check refuses an invitee on its inviter's device)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.loyalty_deps import ClientDep, ClientUser, KeyDep, admin_programme
from liucun.api.schemas import ERRORS, ErrorResponse
from liucun.loyalty.boards import leaderboard
from liucun.loyalty.invites import DEVICE_ID_MAX, accept_invite, invite_status, note_device
from liucun.loyalty.levels import level_distribution, level_status, review_levels
from liucun.loyalty.operations import Outcome
from liucun.loyalty.social import (
    GOAL_ID_MAX,
    close_expired_goals,
    goal_status,
    join_goal,
    settle_formed_goals,
    start_goal,
)

router = APIRouter(tags=["loyalty"])
ADMIN = "/admin/v1/apps/{app}/loyalty"
GoalPath = Annotated[str, Path(min_length=1, max_length=GOAL_ID_MAX)]
# refusals by LoyaltyError, and 422s that are strings (a missing Idempotency-Key) or lists
REFUSED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    422: {"model": ErrorResponse, "description": "Invalid input (the detail says which)."},
}
OfferName = Annotated[str, Field(min_length=1, max_length=40, description="The playbook's name.")]


def device_user(
    client: ClientDep,
    runtime: RuntimeDep,
    x_device_id: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=DEVICE_ID_MAX,
            description="The device the request comes from (invites refuse shared devices).",
        ),
    ] = None,
) -> ClientUser:
    """The caller, with the device it sent noted for it."""
    if x_device_id is not None:
        note_device(runtime.state, client.prog, client.user_id, x_device_id, client.now)
    return client


DeviceUser = Annotated[ClientUser, Depends(device_user)]


# --------------------------------------------------------------------------- bodies


class Named(BaseModel):
    name: str
    zh: str
    en: str


class Benefits(BaseModel):
    discount_percent: float
    points_multiplier: float
    exclusive_service: bool
    early_access: bool


class Growth(BaseModel):
    total: int = Field(description="Lifetime growth.")
    in_window: int = Field(description="Growth of the last `window_days` app-local days.")
    window_days: int


class NextTier(Named):
    min_growth: int
    growth_needed: int = Field(description="Window growth still needed to reach it.")


class LevelOut(BaseModel):
    user_id: str
    level: Named
    benefits: Benefits
    growth: Growth
    next: NextTier | None = Field(description="The tier above; null at the top.")
    keep_needed: int = Field(description="Window growth still needed to keep the level.")
    level_since: datetime | None
    next_review: date | None = Field(description="App-local day of the next level review.")


class BoardEntry(BaseModel):
    rank: int = Field(description="1 + members with more; ties share a rank (1, 2, 2, 4).")
    user_id: str
    value: int


class BoardMe(BaseModel):
    user_id: str
    rank: int | None = Field(description="Null: nothing in the period.")
    value: int


class BoardOut(BaseModel):
    metric: str
    period: Literal["week", "month"]
    first_day: date
    last_day: date
    entries: list[BoardEntry]
    me: BoardMe | None


class InvitedBy(BaseModel):
    user_id: str
    accepted_at: datetime
    rewarded_at: datetime | None
    rewarded: bool = Field(description="You got your invitee reward.")


class Invitee(BaseModel):
    user_id: str
    accepted_at: datetime
    rewarded_at: datetime | None = Field(description="When the invite's rewards were given.")
    inviter_rewarded: bool
    invitee_rewarded: bool


class InviteOut(BaseModel):
    user_id: str
    code: str = Field(description="Your invite code, to share.")
    enabled: bool
    reward_on: Literal["first_visit", "first_order"]
    invited_by: InvitedBy | None
    invitees: list[Invitee] = Field(description="Newest first, at most 100.")
    invitees_total: int
    rewarded_this_month: int = Field(description="Invites you were rewarded for this month.")
    monthly_limit: int


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, description="The inviter's invite code.")
    device_id: str = Field(min_length=1, max_length=DEVICE_ID_MAX)


class SideOut(BaseModel):
    status: Literal["granted", "already", "monthly_limit", "unavailable"]
    reward: dict[str, Any] | None
    code: str | None = Field(description="Why it was unavailable (e.g. coupon_sold_out).")


class AcceptOut(BaseModel):
    invitee: str
    inviter: str
    accepted_at: datetime
    reward_on: Literal["first_visit", "first_order"]
    rewards: dict[str, SideOut] | None = Field(
        description="`inviter` and `invitee`, when the rewards were given now (first_visit)."
    )
    replayed: bool


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer: OfferName


class HelpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    benefit: OfferName


class OfferOut(Named):
    people: int | None
    hours: int | None
    reward: dict[str, Any] | None = None


class GoalMember(BaseModel):
    user_id: str
    joined_at: datetime
    rewarded: bool


class GoalOut(BaseModel):
    goal_id: str
    kind: Literal["group", "help"]
    offer: OfferOut
    owner: str
    needed: int
    joined: int
    status: Literal["open", "formed", "failed"]
    created_at: datetime
    deadline: datetime
    closed_at: datetime | None
    members: list[GoalMember] = Field(description="A group's members; a help-unlock's helpers.")
    owner_rewarded: bool


class GoalWritten(GoalOut):
    replayed: bool


class TierCount(Named):
    min_growth: int
    members: int


class LevelsOut(BaseModel):
    tiers: list[TierCount]
    members: int


class LevelChangeOut(BaseModel):
    user_id: str
    old_level: str
    new_level: str
    reason: str
    changed_at: datetime


class ReviewOut(BaseModel):
    changes: list[LevelChangeOut]


class FailedGoal(BaseModel):
    goal_id: str
    kind: Literal["group", "help"]
    offer: str
    owner: str
    needed: int
    joined: int
    deadline: datetime
    members: list[str]
    refund: list[str] = Field(description="Group members whose payment your backend refunds.")


class SettledReward(BaseModel):
    goal_id: str
    user_id: str
    status: str
    code: str | None
    reward: dict[str, Any] | None


class CloseOut(BaseModel):
    failed: list[FailedGoal]
    settled: list[SettledReward] = Field(description="Rewards of formed goals given late.")


def _written(outcome: Outcome) -> dict[str, Any]:
    return {**outcome.result, "replayed": outcome.replayed}


# --------------------------------------------------------------------------- levels, boards


@router.get("/v1/loyalty/level", response_model=LevelOut, responses=REFUSED)
def get_level(user: DeviceUser, runtime: RuntimeDep) -> dict[str, Any]:
    """My level, its benefits, my growth and what the next tier needs."""
    return level_status(runtime.state, user.prog, user.user_id, user.now)


@router.get("/v1/loyalty/leaderboards/{metric}", response_model=BoardOut, responses=REFUSED)
def get_board(
    metric: Literal["checkins", "points_earned"],
    user: DeviceUser,
    runtime: RuntimeDep,
    period: Annotated[Literal["week", "month"], Query()] = "week",
) -> dict[str, Any]:
    """The top members this app-local week (from Monday) or month, and my rank."""
    return leaderboard(runtime.state, user.prog, metric, period, user.now, user.user_id)


# --------------------------------------------------------------------------- invites


@router.get("/v1/loyalty/invite", response_model=InviteOut, responses=REFUSED)
def get_invite(user: DeviceUser, runtime: RuntimeDep) -> dict[str, Any]:
    """My invite code, who invited me, my invitees and their rewards."""
    return invite_status(runtime.state, user.prog, user.user_id, user.now)


@router.post("/v1/loyalty/invite/accept", response_model=AcceptOut, responses=REFUSED)
def post_accept(body: AcceptIn, key: KeyDep, user: DeviceUser, runtime: RuntimeDep) -> Any:
    """Accept an invite code (a new user, once, from a device the inviter has not used)."""
    outcome = accept_invite(
        runtime.state, user.prog, user.user_id, body.code, body.device_id, user.now, key
    )
    return _written(outcome)


# --------------------------------------------------------------------------- groups, helps


@router.post("/v1/loyalty/groups", response_model=GoalWritten, responses=REFUSED)
def post_group(body: GroupIn, key: KeyDep, user: DeviceUser, runtime: RuntimeDep) -> Any:
    """Start a group buy of the playbook's offer; you are its first member."""
    outcome = start_goal(runtime.state, user.prog, "group", body.offer, user.user_id, user.now, key)
    return _written(outcome)


@router.post("/v1/loyalty/groups/{goal_id}/join", response_model=GoalWritten, responses=REFUSED)
def post_join(goal_id: GoalPath, key: KeyDep, user: DeviceUser, runtime: RuntimeDep) -> Any:
    """Join a group buy; the last member forms it and every member is rewarded."""
    outcome = join_goal(runtime.state, user.prog, goal_id, user.user_id, user.now, key, "group")
    return _written(outcome)


@router.get("/v1/loyalty/groups/{goal_id}", response_model=GoalOut, responses=REFUSED)
def get_group(goal_id: GoalPath, user: DeviceUser, runtime: RuntimeDep) -> Any:
    return goal_status(runtime.state, user.prog, goal_id, user.now, "group")


@router.post("/v1/loyalty/helps", response_model=GoalWritten, responses=REFUSED)
def post_help_goal(body: HelpIn, key: KeyDep, user: DeviceUser, runtime: RuntimeDep) -> Any:
    """Ask friends to help unlock the playbook's benefit."""
    outcome = start_goal(
        runtime.state, user.prog, "help", body.benefit, user.user_id, user.now, key
    )
    return _written(outcome)


@router.post("/v1/loyalty/helps/{goal_id}/help", response_model=GoalWritten, responses=REFUSED)
def post_help(goal_id: GoalPath, key: KeyDep, user: DeviceUser, runtime: RuntimeDep) -> Any:
    """Help a friend; the last helper unlocks the friend's reward."""
    outcome = join_goal(runtime.state, user.prog, goal_id, user.user_id, user.now, key, "help")
    return _written(outcome)


@router.get("/v1/loyalty/helps/{goal_id}", response_model=GoalOut, responses=REFUSED)
def get_help(goal_id: GoalPath, user: DeviceUser, runtime: RuntimeDep) -> Any:
    return goal_status(runtime.state, user.prog, goal_id, user.now, "help")


# --------------------------------------------------------------------------- admin


@router.get(f"{ADMIN}/levels", response_model=LevelsOut, responses=REFUSED)
def get_levels(app: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    """Members per tier of the playbook in force."""
    a = admin_programme(runtime, token, app)
    tiers = level_distribution(runtime.state, a.prog)
    return {"tiers": tiers, "members": sum(t["members"] for t in tiers)}


@router.post(f"{ADMIN}/levels/review", response_model=ReviewOut, responses=REFUSED)
def post_review(app: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    """Run the level review now (the daily jobs run it too): members due get the tier their
    window growth earns, at most `max_drop` below. Running it again changes nothing."""
    a = admin_programme(runtime, token, app)
    return {"changes": [c.as_json() for c in review_levels(runtime.state, a.prog, a.now)]}


@router.post(f"{ADMIN}/goals/close-expired", response_model=CloseOut, responses=REFUSED)
def post_close_expired(app: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    """Fail the group buys and help-unlocks open past their deadline (listing the group
    members to refund) and give formed goals' rewards still missing. Safe to run again."""
    a = admin_programme(runtime, token, app)
    settled = settle_formed_goals(runtime.state, a.prog, a.now)
    return {"failed": close_expired_goals(runtime.state, a.prog, a.now), "settled": settled}
