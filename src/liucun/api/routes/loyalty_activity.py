"""Loyalty routes: activity (client `/v1/loyalty/...`, admin `/admin/v1/apps/{app}/loyalty/...`):
check-in and make-up cards, the monthly ladder, daily tasks, member day."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.loyalty_deps import ClientDep, KeyDep, admin_programme
from liucun.api.schemas import ERRORS
from liucun.loyalty.checkin import check_in, checkin_counts, checkin_status, make_up
from liucun.loyalty.ladder import ladder_progress
from liucun.loyalty.member_day import member_day_info
from liucun.loyalty.overview import loyalty_overview
from liucun.loyalty.tasks import tasks_today

router = APIRouter(tags=["loyalty"])
ADMIN = "/admin/v1/apps/{app}/loyalty"


class RewardOut(BaseModel):
    points: int
    coupon: str | None = Field(description="A coupon template's name.")


class GrantedOut(BaseModel):
    reward_key: str
    kind: str = Field(description="checkin, streak, ladder or task.")
    points: int
    coupon: dict[str, Any] | None = Field(description="The coupon issued, if any.")
    badge: str | None


class UnavailableOut(BaseModel):
    reward_key: str
    code: str = Field(description="Why the reward could not be given (e.g. coupon_sold_out).")


class CheckinOut(BaseModel):
    user_id: str
    day: dt.date = Field(description="The app-local day checked in.")
    already_checked_in: bool = Field(description="True when the day was checked in before.")
    streak: int = Field(description="Check-ins in a row ending this day.")
    makeup: bool
    month_count: int = Field(description="Check-ins in the day's app-local month.")
    points: int = Field(description="Points for the check-in itself.")
    rewards: list[GrantedOut]
    badges: list[str] = Field(description="Badges earned by this check-in.")
    unavailable: list[UnavailableOut]


class NextMonthly(BaseModel):
    count: int
    to_go: int
    reward: RewardOut


class NextStreak(BaseModel):
    days: int
    to_go: int
    reward: RewardOut


class BadgeOut(BaseModel):
    name: str
    zh: str
    en: str
    streak: int
    earned: bool


class MakeupInfo(BaseModel):
    enabled: bool
    per_month: int
    used_this_month: int
    left_this_month: int
    max_days_back: int
    cost_points: int


class CheckinStatusOut(BaseModel):
    user_id: str
    today: dt.date
    checked_in_today: bool
    streak: int = Field(description="The current streak: one ending today or yesterday, else 0.")
    longest_streak: int
    month: str
    month_count: int
    month_days: list[dt.date]
    points_per_checkin: int
    next_monthly: NextMonthly | None
    next_streak: NextStreak | None
    badges: list[BadgeOut]
    makeup: MakeupInfo


class MakeupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: dt.date = Field(description="The missed app-local day to check in for.")


class MakeupOut(BaseModel):
    user_id: str
    day: dt.date
    streak: int = Field(description="The made-up day's streak.")
    current_streak_end: int = Field(description="The streak at the end of the joined run.")
    month_count: int
    cost_points: int
    rewards: list[GrantedOut]
    badges: list[str]
    unavailable: list[UnavailableOut]
    replayed: bool = Field(description="True when the key was used before: nothing changed.")


class LadderStepOut(BaseModel):
    visit: int
    zh: str
    en: str
    reward: RewardOut
    reached: bool
    granted: bool


class Banner(BaseModel):
    zh: str
    en: str


class LadderOut(BaseModel):
    user_id: str
    enabled: bool
    month: str
    counts: str = Field(description="visit_days or visits.")
    count: int = Field(description="The month's progress.")
    steps: list[LadderStepOut]
    next_step: int | None
    to_go: int
    banner: Banner | None
    popup: bool = Field(description="Show the month's benefits: progress is exactly 1.")


class TaskOut(BaseModel):
    name: str
    zh: str
    en: str
    event: str
    count: int
    progress: int
    done: bool
    granted: bool
    reward: RewardOut


class TasksOut(BaseModel):
    user_id: str
    day: dt.date
    tasks: list[TaskOut]


class MemberDayOut(BaseModel):
    enabled: bool
    today: bool = Field(description="Today (app-local) is a member day.")
    date: dt.date
    days: list[int]
    next_day: dt.date | None = Field(description="The next member day from today on.")
    days_until: int | None
    points_multiplier: float
    discount_percent: float
    zh: str
    en: str


class CheckinCountsOut(BaseModel):
    day: dt.date
    checkins: int
    makeups: int


@router.post("/v1/loyalty/checkin", response_model=CheckinOut, responses=ERRORS)
def post_checkin(client: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Check in for today (app-local). Once a day: calling again the same day answers the
    day's result with `already_checked_in: true` and changes nothing (no key needed)."""
    return check_in(runtime.state, client.prog, client.user_id, client.now)


@router.get("/v1/loyalty/checkin", response_model=CheckinStatusOut, responses=ERRORS)
def get_checkin(client: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    """My check-in page: today, the streak, this month, the next rewards, badges, make-ups."""
    return checkin_status(runtime.state, client.prog, client.user_id, client.now)


@router.post("/v1/loyalty/checkin/makeup", response_model=MakeupOut, responses=ERRORS)
def post_makeup(
    body: MakeupIn, key: KeyDep, client: ClientDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Check in for a missed day with a make-up card (when the playbook offers them), once
    per Idempotency-Key."""
    return make_up(runtime.state, client.prog, client.user_id, body.day, client.now, key)


@router.get("/v1/loyalty/ladder", response_model=LadderOut, responses=ERRORS)
def get_ladder(client: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    """My monthly ladder: this month's visits, the steps, the home-page banner and popup."""
    return ladder_progress(runtime.state, client.prog, client.user_id, client.now)


@router.get("/v1/loyalty/tasks", response_model=TasksOut, responses=ERRORS)
def get_tasks(client: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    """My daily tasks today (app-local), with progress."""
    return tasks_today(runtime.state, client.prog, client.user_id, client.now)


@router.get("/v1/loyalty/member-day", response_model=MemberDayOut, responses=ERRORS)
def get_member_day(client: ClientDep) -> dict[str, Any]:
    """Member day: whether today is one, the next one, the multiplier and the discount."""
    return member_day_info(client.prog, client.now)


@router.get(f"{ADMIN}/checkins", response_model=CheckinCountsOut, responses=ERRORS)
def get_checkin_counts(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    day: Annotated[dt.date | None, Query(description="App-local day; default today.")] = None,
) -> dict[str, Any]:
    """How many members checked in on an app-local day (and how many by make-up)."""
    a = admin_programme(runtime, token, app)
    return checkin_counts(runtime.state, a.prog, day or a.prog.day(a.now))


@router.get(
    f"{ADMIN}/overview",
    response_model=dict[str, Any],
    responses={**ERRORS, 422: {"description": "`from` after `to`, or over 92 days."}},
    summary="Points, check-ins, the ladder, coupons and levels at a glance",
    description="Per app-local day: points issued, spent, expired, reversed, adjusted, and "
    "check-ins; the ladder of `to`'s month; the coupons issued in the span and what became "
    "of them; members per level. docs/loyalty.md#overview.",
)
def get_overview(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    date_from: Annotated[dt.date | None, Query(alias="from", description="Default: to − 29.")] = (
        None
    ),
    date_to: Annotated[dt.date | None, Query(alias="to", description="Default: today.")] = None,
) -> dict[str, Any]:
    a = admin_programme(runtime, token, app)
    last = date_to or a.prog.day(a.now)
    first = date_from or last - dt.timedelta(days=29)
    try:
        return loyalty_overview(runtime.state, a.prog, first, last, a.now)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
