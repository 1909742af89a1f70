"""The playbook's `engage.campaigns` rules: holdout and global-control shares, how results are
measured, the triggers' thresholds, the coupons campaigns may give beyond loyalty's, and the
seeds' win-back flows as campaigns ready to launch.

The issue (and the seeds' "every action must show what it really changed") asks that every
campaign keeps a random holdout that gets nothing (10% by default) and that a global control
group (5% by default) is touched by no campaign at all, so that the cumulative effect of all
campaigns can be measured against it. docs/campaigns.md explains the assignment, the
statistics and each trigger.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from liucun.playbook.churn import EventName, Slug, Strict
from liucun.playbook.loyalty import CouponTemplate
from liucun.playbook.winback import WinbackRules

Text = Annotated[str, Field(min_length=1, max_length=200)]
TriggerName = Literal[
    "coupon_expiring",
    "points_expiring",
    "streak_at_risk",
    "ladder_one_visit_away",
    "new_user_day_3",
    "new_users_first_week",
    "silent_buyers",
    "churned_high_value",
]
TRIGGERS: tuple[str, ...] = TriggerName.__args__  # type: ignore[attr-defined]
LOCAL_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_LISTED_USERS = 100_000


class Target(Strict):
    """Who a campaign reaches: the members of a segment (refreshed by the segments job), the
    users a trigger finds due on the day, or a fixed list of user ids."""

    kind: Literal["segment", "trigger", "users"]
    name: str | None = Field(default=None, min_length=1, max_length=100)
    users: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=MAX_LISTED_USERS
    )

    @model_validator(mode="after")
    def _complete(self) -> Target:
        if self.kind == "users":
            if not self.users or self.name is not None:
                raise ValueError("a `users` target lists `users` (and has no `name`)")
            if len(set(self.users)) != len(self.users):
                raise ValueError("the target's users must be distinct")
        else:
            if self.name is None or self.users is not None:
                raise ValueError(f"a `{self.kind}` target has a `name` (and no `users`)")
            if self.kind == "trigger" and self.name not in TRIGGERS:
                raise ValueError(f"unknown trigger {self.name!r}; known: {', '.join(TRIGGERS)}")
        return self


class Action(Strict):
    """What each treatment user gets: a coupon of a template, points, the coupon of the
    win-back offer that fits the user (`offer`), a subscribe message of a scenario, a banner
    payload the client reads (`GET /v1/engage/banners`) — one or several of these."""

    coupon: Slug | None = None
    points: int = Field(default=0, ge=0, le=1_000_000)
    offer: bool = False
    message: Slug | None = Field(default=None, description="A message scenario (engage.messages).")
    banner: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> Action:
        if not (self.coupon or self.points or self.offer or self.message or self.banner):
            raise ValueError("an action gives a coupon, points, an offer, a message or a banner")
        if self.coupon and self.offer:
            raise ValueError("give `coupon` or `offer`, not both")
        if self.banner is not None and len(repr(self.banner)) > 4000:
            raise ValueError("a banner payload is at most 4000 characters")
        return self

    @property
    def kinds(self) -> list[str]:
        """The parts of the action, in the order they are carried out."""
        parts = [("coupon", bool(self.coupon)), ("offer", self.offer)]
        parts += [("points", self.points > 0), ("banner", self.banner is not None)]
        parts += [("message", bool(self.message))]
        return [name for name, present in parts if present]


class Schedule(Strict):
    """`once`: one run on the first day at or after `at` (app-local); `daily`: a run each
    app-local day at or after `at`, from the start to the end date."""

    kind: Literal["once", "daily"] = "once"
    at: str = "10:00"

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not LOCAL_TIME.match(value):
            raise ValueError("`at` is an app-local time HH:MM (00:00–23:59)")
        return value


class CampaignSpec(Strict):
    """Everything an operator sets on a campaign (the state store keeps it with its status)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    target: Target
    action: Action
    schedule: Schedule = Field(default_factory=Schedule)
    # None: each user is acted on once per campaign; N: again N days or more after the last
    repeat_after_days: int | None = Field(default=None, ge=1, le=366)
    budget_yuan: float | None = Field(default=None, gt=0, le=100_000_000)
    max_actions: int | None = Field(default=None, ge=1, le=100_000_000)
    holdout_share: float | None = Field(default=None, ge=0, lt=0.5)  # None: the playbook's
    conversion_event: EventName | None = None  # None: the playbook's
    window_days: int | None = Field(default=None, ge=1, le=365)  # None: the playbook's


class Flow(CampaignSpec):
    """A ready-made campaign of the playbook (`liucun campaigns create --flow NAME`)."""

    flow: Slug
    zh: Text
    en: Text


class TriggerRules(Strict):
    # seeds (002): "近 15 天未活跃但历史有消费" — silent buyers
    silent_days: int = Field(default=15, ge=1, le=365)
    # ours: past this many days away a user is churned, the churned win-back's concern
    silent_max_days: int = Field(default=89, ge=1, le=3650)
    # ours: points expiring within this many app-local days (today counted)
    points_expiring_days: int = Field(default=7, ge=1, le=60)
    # seeds (002): new users are those in their first 7 days
    new_user_days: int = Field(default=7, ge=1, le=60)
    # issue 8: the new-user reminder on day 3 (day 1: the first day seen)
    new_user_day: int = Field(default=3, ge=1, le=60)
    # seeds (002): churned users get an offer by their value; RFM value (3–15) at least
    high_value_min: int = Field(default=11, ge=3, le=15)

    @model_validator(mode="after")
    def _ordered(self) -> TriggerRules:
        if self.silent_max_days < self.silent_days:
            raise ValueError("silent_max_days must be at least silent_days")
        return self


def _default_templates() -> list[CouponTemplate]:
    # seeds (002): "您有一张 20 元无门槛券即将过期,点击使用" — the silent buyers' coupon
    return [
        CouponTemplate.model_validate(
            {
                "name": "winback_20",
                "zh": "回归专享 20 元无门槛券",
                "en": "Welcome back: 20 yuan off, no minimum",
                "kind": "no_threshold",
                "yuan": 20,
                "valid_days": 7,
                "per_user_limit": 1,
            }
        )
    ]


def _default_flows() -> list[Flow]:
    flows: list[dict[str, Any]] = [
        {
            # seeds (002): silent 15 days with purchases → a 20-yuan no-threshold coupon
            "flow": "winback_silent_buyers",
            "zh": "沉默 15 天的消费用户:20 元无门槛券 + 订阅消息",
            "en": "Buyers silent 15 days: a 20-yuan no-threshold coupon and a message",
            "name": "Win back silent buyers",
            "target": {"kind": "trigger", "name": "silent_buyers"},
            "action": {"coupon": "winback_20", "message": "winback_coupon"},
            "schedule": {"kind": "daily", "at": "10:00"},
        },
        {
            # seeds (002): churned users get an offer by their value and churn reason
            "flow": "winback_churned_vip",
            "zh": "高价值流失用户:按流失原因给回归礼",
            "en": "Churned high-value users: an offer by their churn reason",
            "name": "Win back churned high-value users",
            "target": {"kind": "trigger", "name": "churned_high_value"},
            "action": {"offer": True, "message": "winback_offer"},
            "schedule": {"kind": "daily", "at": "10:00"},
        },
        {
            # seeds (002): new users in their first 7 days → welcome pack reminders
            "flow": "welcome_week",
            "zh": "新用户首 7 天:新人礼包提醒",
            "en": "New users' first 7 days: welcome pack reminders",
            "name": "Welcome pack reminders",
            "target": {"kind": "trigger", "name": "new_users_first_week"},
            "action": {"message": "welcome_pack"},
            "schedule": {"kind": "daily", "at": "10:00"},
            "repeat_after_days": 3,
        },
    ]
    return [Flow.model_validate(f) for f in flows]


class CampaignRules(Strict):
    # issue 8: the share of each campaign's eligible users held out (no action, a record only)
    holdout_share: float = Field(default=0.10, ge=0, lt=0.5)
    # issue 8: the share of the app's users no campaign touches (not even assigned)
    global_control_share: float = Field(default=0.05, ge=0, lt=0.5)
    # results: did the user do this event within `window_days` after assignment
    conversion_event: EventName = "order_paid"
    window_days: int = Field(default=14, ge=1, le=365)
    # two-sided confidence of the lift intervals; SRM flagged below this p (gbstats: 0.001)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    srm_p_value: float = Field(default=0.001, gt=0, lt=0.5)
    # seeds (000): 100 积分换 5 元券 — what a point costs a budget, in fen
    point_value_fen: float = Field(default=5.0, ge=0, le=10_000)
    triggers: TriggerRules = Field(default_factory=TriggerRules)
    # coupons campaigns give besides loyalty's templates (a name in both: loyalty's wins)
    coupon_templates: list[CouponTemplate] = Field(
        default_factory=_default_templates, max_length=100
    )
    # win-back offers' coupons (playbook `winback.offers`) are valid this long
    offer_valid_days: int = Field(default=7, ge=1, le=365)
    flows: list[Flow] = Field(default_factory=_default_flows, max_length=100)

    @model_validator(mode="after")
    def _unique(self) -> CampaignRules:
        for what, names in (
            ("coupon template", [t.name for t in self.coupon_templates]),
            ("flow", [f.flow for f in self.flows]),
        ):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(twice)}")
        return self

    def flow(self, name: str) -> Flow | None:
        return next((f for f in self.flows if f.flow == name), None)


def offer_template_name(offer: str) -> str:
    """The coupon template a win-back offer's coupon is issued under (a playbook slug)."""
    return f"offer_{offer}"[:40]


def campaign_coupon_templates(rules: CampaignRules, winback: WinbackRules) -> list[CouponTemplate]:
    """The coupon templates campaigns may give beyond loyalty's: `coupon_templates`, and one
    per win-back offer with a coupon (valid `offer_valid_days`)."""
    extra: list[CouponTemplate] = list(rules.coupon_templates)
    for offer in winback.offers:
        if offer.coupon is not None:
            terms = offer.coupon.model_dump(exclude_none=True)
            extra.append(
                CouponTemplate.model_validate(
                    {
                        "name": offer_template_name(offer.name),
                        "zh": offer.zh,
                        "en": offer.en,
                        "valid_days": rules.offer_valid_days,
                        **terms,
                    }
                )
            )
    return extra
