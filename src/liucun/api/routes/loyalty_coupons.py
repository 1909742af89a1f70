"""Loyalty routes: coupons, the points exchange and the new-user pack (client `/v1/loyalty/...`
with a user token; admin `/admin/v1/apps/{app}/loyalty/...` with an admin token).

Writes are idempotent: each needs an `Idempotency-Key` header; the same key again answers the
first result. Refusals answer `{"detail": {"code", "message", "zh"}}` (docs/loyalty.md).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, BaseModel, Field

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.loyalty_deps import ClientDep, KeyDep, admin_programme
from liucun.api.schemas import ERRORS, ErrorResponse
from liucun.loyalty import coupons as cp
from liucun.loyalty.new_users import pack_status

router = APIRouter(tags=["loyalty"])

ADMIN = "/admin/v1/apps/{app}/loyalty"
MAX_YUAN = cp.MAX_ORDER_FEN // 100
REFUSED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    422: {"model": ErrorResponse, "description": "Invalid input (the detail says which)."},
}


def _to_the_fen(yuan: float) -> float:
    # round() is correctly rounded: a float written with at most 2 decimals rounds to itself
    if round(yuan, 2) != yuan:
        raise ValueError("amounts are yuan to the fen: at most 2 decimal places")
    return yuan


Yuan = Annotated[
    float,
    Field(
        ge=0.01,
        le=MAX_YUAN,
        allow_inf_nan=False,
        description="Yuan, to the fen (at most 2 decimal places).",
    ),
    AfterValidator(_to_the_fen),
]
OrderId = Annotated[str, Field(min_length=1, max_length=cp.ORDER_ID_MAX)]
TemplateName = Annotated[str, Field(min_length=1, max_length=40)]
CouponRef = Annotated[
    str, Path(min_length=1, max_length=40, description="The coupon's id or its code.")
]
Status = Literal["issued", "locked", "redeemed", "expired", "void"]
Kind = Literal["no_threshold", "spend_save", "discount"]


class Texts(BaseModel):
    zh: str
    en: str


class CouponOut(BaseModel):
    coupon_id: str
    code: str = Field(description="Human-friendly code, 10 characters without 0/O/1/I/L.")
    template: str
    name: Texts
    kind: Kind
    value_yuan: float | None = Field(description="no_threshold, spend_save: yuan off.")
    min_spend_yuan: float | None = Field(description="spend_save: the order must reach this.")
    max_discount_yuan: float | None = Field(description="discount: yuan off at most.")
    percent_off: float | None = Field(description="discount: percent of the order off.")
    first_order_only: bool
    valid_from: datetime
    valid_until: datetime = Field(description="Usable before this instant.")
    status: Status = Field(description="expired: issued and past valid_until.")
    issued_at: datetime
    order_id: str | None = Field(description="The order it is locked on or was used on.")
    order_yuan: float | None
    discount_yuan: float | None
    redeemed_at: datetime | None


class TemplateOut(BaseModel):
    template: str
    name: Texts
    kind: Kind
    value_yuan: float | None
    min_spend_yuan: float | None
    percent_off: float | None
    max_discount_yuan: float | None
    valid_days: int
    first_order_only: bool


class TemplateReport(TemplateOut):
    total_limit: int | None
    per_user_limit: int | None
    budget_yuan: float | None = Field(description="Face value that may be issued in all.")
    issued: int
    face_issued_yuan: float = Field(description="Face value issued so far.")
    redeemed: int
    remaining: int | None = Field(description="Coupons the total limit still allows.")
    in_stock: bool = Field(description="One more fits the total limit and the budget.")


class LockOut(BaseModel):
    coupon: CouponOut
    order_id: str
    order_yuan: float
    discount_yuan: float
    pay_yuan: float = Field(description="The order less the discount.")


class ExchangeItem(BaseModel):
    name: str
    title: Texts
    points: int
    coupon: TemplateOut
    in_stock: bool
    affordable: bool = Field(description="The user has the points now.")


class Catalogue(BaseModel):
    available_points: int
    exchanges: list[ExchangeItem]


class ExchangeOut(BaseModel):
    exchange: str
    points: int = Field(description="Points spent.")
    balance: int = Field(description="Points left.")
    coupon: CouponOut


class Expiring(BaseModel):
    user_id: str
    days_left: int = Field(description="App-local days until its last usable day (0: today).")
    coupon: CouponOut


class PackReward(BaseModel):
    index: int
    points: int
    coupon: TemplateOut | None
    granted: bool
    granted_at: datetime | None
    coupon_id: str | None


class PackOut(BaseModel):
    enabled: bool
    days: int
    joined_day: date | None = Field(description="App-local; null: not a member yet.")
    last_day: date = Field(description="The pack's last app-local day for this user.")
    within_days: bool
    rewards: list[PackReward]


class ClaimIn(BaseModel):
    template: TemplateName


class LockIn(BaseModel):
    order_id: OrderId
    order_yuan: Yuan


class RedeemIn(BaseModel):
    order_id: OrderId
    order_yuan: Yuan | None = Field(
        default=None, description="Needed only to use a coupon not locked on the order."
    )


class ReleaseIn(BaseModel):
    order_id: OrderId


class IssueIn(BaseModel):
    user_id: Annotated[str, Field(min_length=1, max_length=200)]
    template: TemplateName


def _fen(yuan: float | None) -> int | None:
    return None if yuan is None else cp.to_fen(yuan)


# ----------------------------------------------------------------------------------- client


@router.get(
    "/v1/loyalty/coupons",
    response_model=list[CouponOut],
    responses=REFUSED,
    summary="The user's coupons, newest first",
)
def get_coupons(
    user: ClientDep,
    runtime: RuntimeDep,
    status: Annotated[Status | None, Query(description="Only coupons in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    return cp.user_coupons(runtime.state, user.prog, user.user_id, user.now, status, limit)


@router.post(
    "/v1/loyalty/coupons/claim",
    response_model=CouponOut,
    responses=REFUSED,
    summary="Take a coupon of a template",
)
def post_claim(body: ClaimIn, user: ClientDep, runtime: RuntimeDep, key: KeyDep) -> dict[str, Any]:
    """Refused: unknown_coupon_template (404), coupon_limit_reached, coupon_sold_out,
    coupon_budget_exhausted (409)."""
    done = cp.claim_coupon(runtime.state, user.prog, user.user_id, body.template, key, user.now)
    return done.result


@router.post(
    "/v1/loyalty/coupons/{coupon_id}/lock",
    response_model=LockOut,
    responses=REFUSED,
    summary="Hold a coupon for an order and get its discount",
)
def post_lock(
    coupon_id: CouponRef, body: LockIn, user: ClientDep, runtime: RuntimeDep, key: KeyDep
) -> dict[str, Any]:
    """Refused: unknown_coupon (404), coupon_redeemed, coupon_locked, outside_window,
    not_first_order, below_threshold (409)."""
    done = cp.lock_coupon(
        runtime.state,
        user.prog,
        user.user_id,
        coupon_id,
        body.order_id,
        cp.to_fen(body.order_yuan),
        key,
        user.now,
    )
    return done.result


@router.post(
    "/v1/loyalty/coupons/{coupon_id}/redeem",
    response_model=CouponOut,
    responses=REFUSED,
    summary="Use a coupon on a paid order",
)
def post_redeem(
    coupon_id: CouponRef,
    body: RedeemIn,
    user: ClientDep,
    runtime: RuntimeDep,
    key: KeyDep,
) -> dict[str, Any]:
    """A coupon locked on the order is used at its locked discount; one not locked is locked
    and used in one step when `order_yuan` is sent. Redeeming again on the same order answers
    the same. Refused: unknown_coupon (404), coupon_redeemed, coupon_locked,
    coupon_not_locked, and the lock's refusals (409)."""
    done = cp.redeem_coupon(
        runtime.state,
        user.prog,
        user.user_id,
        coupon_id,
        body.order_id,
        key,
        user.now,
        _fen(body.order_yuan),
    )
    return done.result


@router.post(
    "/v1/loyalty/coupons/{coupon_id}/release",
    response_model=CouponOut,
    responses=REFUSED,
    summary="Give back a coupon locked on a cancelled order",
)
def post_release(
    coupon_id: CouponRef,
    body: ReleaseIn,
    user: ClientDep,
    runtime: RuntimeDep,
    key: KeyDep,
) -> dict[str, Any]:
    """Refused: unknown_coupon (404), coupon_redeemed, coupon_locked (another order)."""
    done = cp.release_coupon(
        runtime.state, user.prog, user.user_id, coupon_id, body.order_id, key, user.now
    )
    return done.result


@router.get(
    "/v1/loyalty/exchanges",
    response_model=Catalogue,
    responses=REFUSED,
    summary="What points can be exchanged for",
)
def get_exchanges(user: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    return cp.exchange_catalogue(runtime.state, user.prog, user.user_id, user.now)


@router.post(
    "/v1/loyalty/exchanges/{name}",
    response_model=ExchangeOut,
    responses=REFUSED,
    summary="Spend points for a coupon",
)
def post_exchange(
    name: Annotated[str, Path(min_length=1, max_length=40)],
    user: ClientDep,
    runtime: RuntimeDep,
    key: KeyDep,
) -> dict[str, Any]:
    """The points are spent and the coupon issued together, or neither. Refused:
    unknown_exchange (404), insufficient_points and the coupon's refusals (409)."""
    done = cp.exchange_points(runtime.state, user.prog, user.user_id, name, key, user.now)
    return done.result


@router.get(
    "/v1/loyalty/new-user-pack",
    response_model=PackOut,
    responses=REFUSED,
    summary="The new-user pack: its rewards and what the user was granted",
)
def get_new_user_pack(user: ClientDep, runtime: RuntimeDep) -> dict[str, Any]:
    return pack_status(runtime.state, user.prog, user.user_id, user.now)


# ------------------------------------------------------------------------------------ admin


@router.get(
    f"{ADMIN}/coupons/templates",
    response_model=list[TemplateReport],
    responses=REFUSED,
    summary="Coupon templates with the coupons issued and redeemed",
)
def get_templates(app: str, runtime: RuntimeDep, token: AdminToken) -> list[dict[str, Any]]:
    found = admin_programme(runtime, token, app)
    return cp.template_report(runtime.state, found.prog)


@router.post(
    f"{ADMIN}/coupons/issue",
    response_model=CouponOut,
    responses=REFUSED,
    summary="Issue a coupon to a user",
)
def post_issue(
    app: str, body: IssueIn, runtime: RuntimeDep, token: AdminToken, key: KeyDep
) -> dict[str, Any]:
    """Within the template's limits, as a claim. Refused: unknown_coupon_template (404),
    coupon_limit_reached, coupon_sold_out, coupon_budget_exhausted (409)."""
    found = admin_programme(runtime, token, app)
    done = cp.claim_coupon(
        runtime.state, found.prog, body.user_id, body.template, key, found.now, "coupon_issue"
    )
    return done.result


@router.get(
    f"{ADMIN}/coupons/expiring",
    response_model=list[Expiring],
    responses=REFUSED,
    summary="Coupons about to expire (for reminders)",
)
def get_expiring(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    days: Annotated[
        int | None,
        Query(
            ge=1,
            le=366,
            description="Last usable day within this many app-local days, today counted; "
            "default: the playbook's coupons.expiry_reminder_days.",
        ),
    ] = None,
) -> list[dict[str, Any]]:
    found = admin_programme(runtime, token, app)
    return cp.expiring_coupons(runtime.state, found.prog, found.now, days)
