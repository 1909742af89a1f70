"""The playbook's `engage.messages` rules: frequency caps, quiet hours, delivery retries and the
subscribe-message template of each scenario.

The seeds (shared/seeds/000) reach users with authorised template messages matched to real
scenarios — a bill about to fall due ("充值立减"), assets that changed — "每月推送频次控制在
2-3 次为宜", each with a clear call to action opening the right page, and warn that pushing too
often makes users revoke consent and cuts the channel. Seed 002 words the coupon reminder
("您有一张 20 元无门槛券即将过期，点击使用"). Hence the defaults: at most 3 messages a user
a calendar month and 1 a day, counted across campaigns; none between 22:00 and 08:00 app-local
(held until the window ends); templates framed as service notices (platform review may refuse
plain promotion). docs/messages.md explains every rule.
"""

from __future__ import annotations

import string
from datetime import time
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from liucun.playbook.churn import Slug, Strict

Channel = Literal["wechat", "alipay", "webhook"]
CHANNELS: tuple[Channel, ...] = ("wechat", "alipay", "webhook")
# the scenarios campaigns and triggers send (issue 8; docs/messages.md lists their data)
SCENARIOS = (
    "coupon_expiring",
    "points_expiring",
    "bill_due",
    "assets_changed",
    "winback_coupon",
    "welcome_pack_reminder",
    "new_user_day3",
    "streak_at_risk",
    "ladder_one_visit_away",
)
FieldKey = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]


def placeholders(text: str) -> list[str]:
    """The `{name}` data keys a field value refers to (`{{`, `}}` are literal braces)."""
    names = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{text!r}: placeholders are plain names like {{coupon_name}}")
        names.append(name)
    return names


class FrequencyCaps(Strict):
    """Most messages one user receives, over all campaigns and scenarios: per app-local day and
    per app-local calendar month (seeds 000: 2–3 a month)."""

    per_day: int = Field(default=1, ge=0, le=100)
    per_month: int = Field(default=3, ge=0, le=1000)


class QuietHours(Strict):
    """App-local hours in which nothing is sent: a message decided inside them is held and goes
    out when they end. `start` after `end` spans midnight (22:00–08:00)."""

    enabled: bool = True
    start: time = time(22, 0)
    end: time = time(8, 0)

    @model_validator(mode="after")
    def _a_window(self) -> QuietHours:
        if self.enabled and self.start == self.end:
            raise ValueError("start and end are equal: give a window, or enabled: false")
        return self


class Delivery(Strict):
    """How channels are called: each attempt times out after `timeout_s`; a transient failure
    (timeout, HTTP 5xx, WeChat -1, Alipay 20000) is retried up to `max_attempts` in all, waiting
    `backoff_s` doubling to `max_backoff_s`; `batch` messages are claimed per run; a message
    claimed by a server that died is claimed again after `lease_s`."""

    timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_s: float = Field(default=1.0, ge=0, le=600)
    max_backoff_s: float = Field(default=30.0, ge=0, le=3600)
    batch: int = Field(default=500, ge=1, le=100_000)
    lease_s: float = Field(default=600.0, ge=10, le=86_400)


class LongTerm(Strict):
    """Whether the app's category may use long-term (长期) subscriptions on each platform:
    WeChat allows them only to some industries (government, medical, transport, finance,
    education...), Alipay to some categories. Off: every message needs a one-time credit."""

    wechat: bool = False
    alipay: bool = False


class ChannelTemplate(Strict):
    """One platform template for a scenario: its id in the platform console (`null` until the
    operator fills it in: the scenario is then skipped as `no_template`), the page the message
    opens (default: the scenario's), and each template field's value — text with `{name}`
    placeholders filled from the send request's data."""

    channel: Channel
    template_id: str | None = Field(default=None, min_length=1, max_length=128)
    subscription: Literal["one_time", "long_term"] = "one_time"
    page: str | None = Field(default=None, min_length=1, max_length=500)
    fields: dict[FieldKey, Annotated[str, Field(max_length=500)]] = Field(
        default_factory=dict, max_length=20
    )

    @field_validator("fields")
    @classmethod
    def _placeholders(cls, fields: dict[str, str]) -> dict[str, str]:
        for value in fields.values():
            placeholders(value)
        return fields


class ScenarioTemplate(Strict):
    """A scenario's message: its name (zh, en), the page its call to action opens, and the
    templates to try in order (the first the user has consent for is used)."""

    zh: str = Field(min_length=1, max_length=100)
    en: str = Field(min_length=1, max_length=100)
    page: str = Field(min_length=1, max_length=500)
    channels: list[ChannelTemplate] = Field(min_length=1, max_length=3)

    @field_validator("channels")
    @classmethod
    def _one_per_channel(cls, channels: list[ChannelTemplate]) -> list[ChannelTemplate]:
        seen = [c.channel for c in channels]
        if len(set(seen)) != len(seen):
            raise ValueError("one template per channel")
        return channels


def _wechat(**fields: str) -> list[ChannelTemplate]:
    return [ChannelTemplate(channel="wechat", fields=fields)]


def default_templates() -> dict[str, ScenarioTemplate]:
    """The seeds' scenarios as service notices (seeds 000, 002); template ids are the app's own."""
    return {
        "coupon_expiring": ScenarioTemplate(
            zh="优惠券到期提醒",
            en="Coupon expiry reminder",
            page="pages/coupons/index",
            channels=_wechat(
                thing1="{coupon_name}", time2="{valid_until}", thing3="优惠券即将过期，点击使用"
            ),
        ),
        "points_expiring": ScenarioTemplate(
            zh="积分到期提醒",
            en="Points expiry reminder",
            page="pages/points/index",
            channels=_wechat(
                number1="{points}", date2="{expires_on}", thing3="积分即将过期，点击兑换"
            ),
        ),
        "bill_due": ScenarioTemplate(
            zh="账单到期提醒",
            en="Bill due reminder",
            page="pages/bill/index",
            channels=_wechat(amount1="{amount}", date2="{due_on}", thing3="账单即将到期，充值立减"),
        ),
        "assets_changed": ScenarioTemplate(
            zh="资产变动通知",
            en="Assets changed",
            page="pages/assets/index",
            channels=_wechat(
                thing1="{asset_name}", amount2="{change}", thing3="资产有变动，点击查看"
            ),
        ),
        "winback_coupon": ScenarioTemplate(
            zh="专属回归福利到账",
            en="Welcome-back coupon",
            page="pages/coupons/index",
            channels=_wechat(thing1="{coupon_name}", thing2="专属福利已到账，点击使用"),
        ),
        "welcome_pack_reminder": ScenarioTemplate(
            zh="新人礼包待领取",
            en="Welcome pack reminder",
            page="pages/welcome/index",
            channels=_wechat(thing1="新人礼包", thing2="礼包待领取，点击查看"),
        ),
        "new_user_day3": ScenarioTemplate(
            zh="新用户第 3 天提醒",
            en="New user, day 3",
            page="pages/index/index",
            channels=_wechat(thing1="新人专享", thing2="新人福利进行中，点击查看"),
        ),
        "streak_at_risk": ScenarioTemplate(
            zh="连续签到提醒",
            en="Check-in streak at risk",
            page="pages/checkin/index",
            channels=_wechat(number1="{streak}", thing2="今天签到即可保持连续签到"),
        ),
        "ladder_one_visit_away": ScenarioTemplate(
            zh="阶梯奖励差一次",
            en="Ladder reward one visit away",
            page="pages/ladder/index",
            channels=_wechat(number1="{visits}", thing2="再来 1 次即可领取本月奖励"),
        ),
    }


class MessageRules(Strict):
    caps: FrequencyCaps = Field(default_factory=FrequencyCaps)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    delivery: Delivery = Field(default_factory=Delivery)
    long_term: LongTerm = Field(default_factory=LongTerm)
    templates: dict[Slug, ScenarioTemplate] = Field(
        default_factory=default_templates, max_length=100
    )

    @model_validator(mode="after")
    def _long_term_allowed(self) -> MessageRules:
        for name, scenario in self.templates.items():
            for t in scenario.channels:
                if t.subscription != "long_term":
                    continue
                if t.channel == "webhook" or not getattr(self.long_term, t.channel):
                    raise ValueError(
                        f"templates.{name}: a long-term {t.channel} template needs "
                        f"long_term.{t.channel}: true (only categories the platform allows)"
                    )
        return self

    def template_of(self, template_id: str, channel: str) -> ChannelTemplate | None:
        """The configured template with this platform id on `channel`, if any."""
        for scenario in self.templates.values():
            for t in scenario.channels:
                if t.channel == channel and t.template_id == template_id:
                    return t
        return None
