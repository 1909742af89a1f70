"""The playbook's `loyalty` section: points, earning rules, levels, member day, check-in,
the monthly ladder, coupons, the new-user pack, invites, group buys, help-unlocks, boards, tasks.

The defaults are the seeds' figures (shared/seeds), each cited in `default.yaml`; figures the
seeds do not give are marked there as ours.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from liucun.playbook.churn import EventName, Slug, Strict
from liucun.playbook.winback import Coupon

Text = Annotated[str, Field(min_length=1, max_length=200)]


def _unique(what: str, names: list[str]) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(twice)}")


class Reward(Strict):
    """What a threshold, a task or a social goal gives: points, a coupon, or both."""

    points: int = Field(default=0, ge=0, le=1_000_000)
    coupon: Slug | None = Field(default=None, description="A coupon template's name.")

    @model_validator(mode="after")
    def _something(self) -> Reward:
        if self.points == 0 and self.coupon is None:
            raise ValueError("a reward gives points, a coupon, or both")
        return self


class PointsRules(Strict):
    """How points are valued, expire and are taken back."""

    # points per yuan of an order (seeds 001: 消费 1 元积 1 分), rounded down to whole points
    per_yuan: float = Field(default=1.0, ge=0, le=1000)
    expiry: Literal["never", "days", "end_of_following_year"] = "end_of_following_year"
    expiry_days: int = Field(default=365, ge=1, le=3660, description="With expiry: days.")
    # a refund after the points were spent: false → take back only what is left
    allow_negative: bool = False
    refund_event: EventName = "order_refunded"


class EarningRule(Strict):
    """Points for an event: `per_yuan` × its amount, or a fixed `points`, within the caps."""

    name: Slug
    zh: Text
    en: Text
    event: EventName
    per_yuan: float | None = Field(default=None, gt=0, le=1000)
    points: int | None = Field(default=None, gt=0, le=1_000_000)
    # award only the user's n-th such event of the app-local month (monthly action counts)
    nth_in_month: int | None = Field(default=None, ge=1, le=10_000)
    # only events the app's backend sent (admin token): client events can be forged
    server_only: bool = False
    member_day: bool = Field(default=False, description="The member-day multiplier applies.")
    level_multiplier: bool = Field(default=False, description="The level's multiplier applies.")
    daily_cap: int | None = Field(default=None, ge=1, description="Points per user per local day.")
    monthly_cap: int | None = Field(
        default=None, ge=1, description="Points per user per local month."
    )
    monthly_budget: int | None = Field(
        default=None, ge=1, description="Points for all users a month."
    )

    @model_validator(mode="after")
    def _one_measure(self) -> EarningRule:
        if (self.per_yuan is None) == (self.points is None):
            raise ValueError("give per_yuan (points per yuan of the amount) or points, not both")
        return self


class Tier(Strict):
    """A membership level and its benefits."""

    name: Slug
    zh: Text
    en: Text
    min_growth: int = Field(ge=0, le=100_000_000)
    discount_percent: float = Field(default=0, ge=0, lt=100)
    points_multiplier: float = Field(default=1, ge=1, le=10)
    exclusive_service: bool = False
    early_access: bool = False


class GrowthRules(Strict):
    """Growth value (成长值) from spending, active days and shares (seeds 001: 按消费金额、
    活跃天数、分享次数划分会员等级)."""

    per_yuan: float = Field(default=1.0, ge=0, le=1000)
    per_active_day: int = Field(default=1, ge=0, le=10_000)
    per_share: int = Field(default=2, ge=0, le=10_000)
    share_daily_cap: int = Field(default=5, ge=0, le=1000, description="Shares counted per day.")


class LevelReview(Strict):
    """The periodic review that may lower a level: growth earned in the last `window_days`."""

    every_days: int = Field(default=365, ge=1, le=3660)
    window_days: int = Field(default=365, ge=1, le=3660)
    max_drop: int = Field(default=1, ge=0, le=10, description="Levels lost at most per review.")


def _default_tiers() -> list[Tier]:
    return [
        Tier(name="member", zh="普通会员", en="Member", min_growth=0),
        Tier(
            name="silver",
            zh="银卡会员",
            en="Silver",
            min_growth=1000,
            discount_percent=2,
            exclusive_service=True,
        ),
        Tier(
            name="gold",
            zh="金卡会员",
            en="Gold",
            min_growth=5000,
            discount_percent=5,
            points_multiplier=1.5,
            exclusive_service=True,
            early_access=True,
        ),
    ]


class LevelRules(Strict):
    growth: GrowthRules = GrowthRules()
    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1, max_length=20)
    review: LevelReview = LevelReview()

    @model_validator(mode="after")
    def _ascending(self) -> LevelRules:
        if self.tiers[0].min_growth != 0:
            raise ValueError("the first tier is the entry level: its min_growth must be 0")
        for low, high in zip(self.tiers, self.tiers[1:], strict=False):
            if high.min_growth <= low.min_growth:
                raise ValueError(
                    f"tiers must rise: {high.name} needs more growth than {low.name} "
                    f"({high.min_growth} ≤ {low.min_growth})"
                )
        _unique("tier", [t.name for t in self.tiers])
        return self


class MemberDay(Strict):
    """Days of the month (app-local) with a points multiplier and a discount."""

    enabled: bool = True
    days: list[int] = Field(default_factory=lambda: [8], min_length=1, max_length=31)
    points_multiplier: float = Field(default=2, ge=1, le=10)
    discount_percent: float = Field(default=20, ge=0, lt=100)
    zh: str = "会员日:全场 8 折,积分翻倍"
    en: str = "Member day: 20% off everything, double points"

    @model_validator(mode="after")
    def _days_of_month(self) -> MemberDay:
        bad = [d for d in self.days if not 1 <= d <= 31]
        if bad:
            raise ValueError(f"days of the month run 1–31; got {bad}")
        return self


class CountReward(Strict):
    count: int = Field(ge=1, le=31)
    reward: Reward


class StreakReward(Strict):
    days: int = Field(ge=2, le=3660)
    reward: Reward


class Badge(Strict):
    name: Slug
    zh: Text
    en: Text
    streak: int = Field(ge=2, le=3660, description="Check-ins in a row that earn it.")


class Makeup(Strict):
    """Make-up cards (补签卡): check in for a missed day, off by default."""

    enabled: bool = False
    per_month: int = Field(default=1, ge=1, le=31)
    max_days_back: int = Field(default=3, ge=1, le=31)
    cost_points: int = Field(default=0, ge=0, le=1_000_000)


def _default_monthly() -> list[CountReward]:
    return [CountReward(count=3, reward=Reward(points=100))]


def _default_streaks() -> list[StreakReward]:
    return [StreakReward(days=7, reward=Reward(coupon="streak_7"))]


def _default_badges() -> list[Badge]:
    return [
        Badge(name="streak_7", zh="连续签到 7 天", en="7 days in a row", streak=7),
        Badge(name="streak_30", zh="连续签到 30 天", en="30 days in a row", streak=30),
    ]


class CheckinRules(Strict):
    points: int = Field(default=0, ge=0, le=1_000_000, description="Points for every check-in.")
    monthly: list[CountReward] = Field(default_factory=_default_monthly, max_length=31)
    streaks: list[StreakReward] = Field(default_factory=_default_streaks, max_length=20)
    badges: list[Badge] = Field(default_factory=_default_badges, max_length=20)
    makeup: Makeup = Makeup()


class LadderStep(Strict):
    visit: int = Field(ge=1, le=1000, description="The n-th visit of the month earns it.")
    reward: Reward
    zh: Text
    en: Text


def _default_steps() -> list[LadderStep]:
    return [
        LadderStep(
            visit=3,
            reward=Reward(coupon="ladder_8"),
            zh="当月第 3 次访问领 8 元无门槛券",
            en="An 8-yuan no-threshold coupon on your 3rd visit this month",
        )
    ]


class Ladder(Strict):
    """The monthly MAU benefit with ladder rewards (seeds 000)."""

    enabled: bool = True
    # visit_days: a day with a visit counts once, so reopening the app does not climb
    counts: Literal["visit_days", "visits"] = "visit_days"
    visit_events: list[EventName] = Field(
        default_factory=lambda: ["app_open"], min_length=1, max_length=20
    )
    steps: list[LadderStep] = Field(default_factory=_default_steps, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _rising(self) -> Ladder:
        visits = [s.visit for s in self.steps]
        if visits != sorted(set(visits)):
            raise ValueError(f"steps must be in rising order of visit, each once; got {visits}")
        return self


class CouponTemplate(Coupon):
    """A coupon of one of the seeds' three kinds (its terms checked as `Coupon`'s), with its
    validity and limits."""

    name: Slug
    zh: Text
    en: Text
    max_discount_yuan: float | None = Field(default=None, gt=0, le=100_000)
    valid_days: int = Field(default=30, ge=1, le=3660, description="Valid this long after issue.")
    total_limit: int | None = Field(
        default=None, ge=1, description="Coupons issued at most, in all."
    )
    per_user_limit: int | None = Field(
        default=None, ge=1, description="Issued to one user at most."
    )
    budget_yuan: float | None = Field(default=None, gt=0, description="Face value issued at most.")
    first_order_only: bool = False

    @model_validator(mode="after")
    def _budget_has_face_value(self) -> CouponTemplate:
        if self.kind == "discount" and self.budget_yuan and self.max_discount_yuan is None:
            # a budget counts face value; an uncapped discount coupon has none to count
            raise ValueError("a discount coupon with budget_yuan needs max_discount_yuan")
        return self


def _template(name: str, zh: str, en: str, **terms: Any) -> CouponTemplate:
    return CouponTemplate.model_validate({"name": name, "zh": zh, "en": en, **terms})


def _default_templates() -> list[CouponTemplate]:
    return [
        _template(
            "points_5", "5 元无门槛券", "5 yuan off, no minimum", kind="no_threshold", yuan=5
        ),
        _template(
            "ladder_8", "8 元无门槛券", "8 yuan off, no minimum", kind="no_threshold", yuan=8
        ),
        _template(
            "streak_7", "3 元无门槛券", "3 yuan off, no minimum", kind="no_threshold", yuan=3
        ),
        _template(
            "first_order_10",
            "新人首单立减 10 元",
            "10 yuan off your first order",
            kind="no_threshold",
            yuan=10,
            valid_days=7,
            per_user_limit=1,
            first_order_only=True,
        ),
        _template(
            "invite_10",
            "邀请有礼:满 50 减 10 元",
            "Invite reward: 10 yuan off orders of 50",
            kind="spend_save",
            yuan=10,
            min_spend_yuan=50,
        ),
        _template(
            "group_20",
            "拼团立减 20 元",
            "Group buy: 20 yuan off",
            kind="no_threshold",
            yuan=20,
            valid_days=7,
        ),
        _template(
            "help_discount",
            "助力解锁:9 折券(最多减 30 元)",
            "Unlocked by friends: 10% off (at most 30 yuan)",
            kind="discount",
            percent_off=10,
            max_discount_yuan=30,
        ),
    ]


class CouponRules(Strict):
    templates: list[CouponTemplate] = Field(default_factory=_default_templates, max_length=200)
    expiry_reminder_days: int = Field(default=3, ge=1, le=60)


class Exchange(Strict):
    """Points for a coupon (seeds 000: 100 积分换 5 元券)."""

    name: Slug
    zh: Text
    en: Text
    points: int = Field(ge=1, le=100_000_000)
    coupon: Slug


def _default_exchanges() -> list[Exchange]:
    return [
        Exchange(
            name="points_5",
            zh="100 积分兑 5 元券",
            en="100 points for 5 yuan off",
            points=100,
            coupon="points_5",
        )
    ]


class NewUserPack(Strict):
    """Rewards for users in their first days (seeds 002: 注册 7 天内的新人福利)."""

    enabled: bool = True
    days: int = Field(default=7, ge=1, le=90)
    rewards: list[Reward] = Field(
        default_factory=lambda: [Reward(coupon="first_order_10")], max_length=10
    )


class InviteRules(Strict):
    """Invite a friend, both rewarded (seeds 001: 被邀请人首次使用后双方均可获得奖励)."""

    enabled: bool = True
    reward_on: Literal["first_visit", "first_order"] = "first_order"
    inviter: Reward = Field(default_factory=lambda: Reward(coupon="invite_10"))
    invitee: Reward = Field(default_factory=lambda: Reward(coupon="invite_10"))
    # an invitee joined at most this many days before accepting: old users are not "invited"
    invitee_max_days: int = Field(default=1, ge=0, le=365)
    monthly_limit: int = Field(default=20, ge=1, le=10_000, description="Rewarded invites a month.")


class SocialOffer(Strict):
    """A goal of `people` within `hours`: a group buy (members join) or a help-unlock
    (friends help)."""

    name: Slug
    zh: Text
    en: Text
    people: int = Field(ge=2, le=1000)
    hours: int = Field(default=24, ge=1, le=24 * 30)
    reward: Reward


def _default_groups() -> list[SocialOffer]:
    return [
        SocialOffer(
            name="group_3",
            zh="邀请 3 人参团立减 20 元",
            en="3 people join the group: 20 yuan off",
            people=3,
            reward=Reward(coupon="group_20"),
        )
    ]


def _default_helps() -> list[SocialOffer]:
    return [
        SocialOffer(
            name="help_3",
            zh="3 位好友助力解锁 9 折券",
            en="3 friends help: unlock 10% off",
            people=3,
            reward=Reward(coupon="help_discount"),
        )
    ]


BoardMetric = Literal["checkins", "points_earned"]


def _board_metrics() -> list[BoardMetric]:
    return ["checkins", "points_earned"]


class Leaderboards(Strict):
    size: int = Field(default=50, ge=1, le=1000)
    metrics: list[BoardMetric] = Field(default_factory=_board_metrics, min_length=1)


class DailyTask(Strict):
    name: Slug
    zh: Text
    en: Text
    event: EventName
    count: int = Field(default=1, ge=1, le=1000)
    reward: Reward


def _default_tasks() -> list[DailyTask]:
    return [
        DailyTask(
            name="share_once",
            zh="分享 1 次",
            en="Share once",
            event="share",
            reward=Reward(points=10),
        ),
        DailyTask(
            name="browse_3",
            zh="浏览 3 个页面",
            en="View 3 pages",
            event="page_view",
            count=3,
            reward=Reward(points=5),
        ),
    ]


def _default_earning() -> list[EarningRule]:
    return [
        EarningRule(
            name="order_points",
            zh="消费 1 元积 1 分",
            en="1 point per yuan spent",
            event="order_paid",
            per_yuan=1.0,
            server_only=True,
            member_day=True,
            level_multiplier=True,
        ),
        EarningRule(
            name="share_points",
            zh="分享得 5 积分",
            en="5 points a share",
            event="share",
            points=5,
            daily_cap=15,
        ),
    ]


class LoyaltyRules(Strict):
    points: PointsRules = PointsRules()
    earning: list[EarningRule] = Field(default_factory=_default_earning, max_length=50)
    levels: LevelRules = LevelRules()
    member_day: MemberDay = MemberDay()
    checkin: CheckinRules = CheckinRules()
    ladder: Ladder = Ladder()
    coupons: CouponRules = CouponRules()
    exchanges: list[Exchange] = Field(default_factory=_default_exchanges, max_length=50)
    new_user_pack: NewUserPack = NewUserPack()
    invites: InviteRules = InviteRules()
    group_buys: list[SocialOffer] = Field(default_factory=_default_groups, max_length=50)
    help_unlocks: list[SocialOffer] = Field(default_factory=_default_helps, max_length=50)
    leaderboards: Leaderboards = Leaderboards()
    tasks: list[DailyTask] = Field(default_factory=_default_tasks, max_length=50)

    @model_validator(mode="after")
    def _references(self) -> LoyaltyRules:
        _unique("earning rule", [r.name for r in self.earning])
        _unique("coupon template", [t.name for t in self.coupons.templates])
        _unique("exchange", [e.name for e in self.exchanges])
        _unique("group buy", [g.name for g in self.group_buys])
        _unique("help-unlock", [h.name for h in self.help_unlocks])
        _unique("task", [t.name for t in self.tasks])
        _unique("badge", [b.name for b in self.checkin.badges])
        known = {t.name for t in self.coupons.templates}
        unknown = sorted({c for c in self.coupon_names() if c not in known})
        if unknown:
            raise ValueError(
                f"coupon templates named but not defined under coupons.templates: "
                f"{', '.join(unknown)}"
            )
        return self

    def coupon_names(self) -> list[str]:
        """Every coupon template a rule hands out."""
        rewards = [
            *(c.reward for c in self.checkin.monthly),
            *(s.reward for s in self.checkin.streaks),
            *(s.reward for s in self.ladder.steps),
            *self.new_user_pack.rewards,
            self.invites.inviter,
            self.invites.invitee,
            *(g.reward for g in self.group_buys),
            *(h.reward for h in self.help_unlocks),
            *(t.reward for t in self.tasks),
        ]
        return [r.coupon for r in rewards if r.coupon] + [e.coupon for e in self.exchanges]

    def template(self, name: str) -> CouponTemplate | None:
        return next((t for t in self.coupons.templates if t.name == name), None)

    def tier(self, name: str) -> Tier:
        """The tier called `name`, or the entry tier when the playbook no longer has it."""
        return next((t for t in self.levels.tiers if t.name == name), self.levels.tiers[0])
