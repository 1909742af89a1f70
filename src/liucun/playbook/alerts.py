"""The playbook's `alerts` section: early-warning thresholds, their actions, and the webhook.

Each rule is defined in `liucun.lifecycle.alerts` and documented in docs/alerts.md; the
defaults are the seeds' figures (shared/seeds/000 for the MAU report's targets, the first-screen
target and the promotion cliff; 002 for early warning from behaviour signals), or say why where
the seeds give none.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, model_validator

from liucun.playbook.churn import Strict

Severity = Literal["info", "warning", "critical"]


def _text(default: str) -> Any:
    return Field(default, min_length=1, max_length=500)


class WeeklyRevisits(Strict):
    """Fires when the month's weekly average revisits (docs/metrics.md, `mau-report`) are
    below `min`."""

    enabled: bool = True
    # seeds (000): "周均复访次数低于 2 次需升级福利力度"
    min: float = Field(default=2.0, ge=0, le=100)
    severity: Severity = "warning"
    action_zh: str = _text(
        "升级福利力度:加大月活专属福利与阶梯奖励(如“当月第 3 次访问领 8 元券”),鼓励用户每周多次复访"
    )
    action_en: str = _text(
        "Raise incentives: richer monthly-active rewards and ladder rewards (e.g. an 8-yuan "
        "coupon on the 3rd visit of the month) so that users come back several times a week"
    )


class ChurnRate(Strict):
    """Fires when the last complete month's churn rate (docs/metrics.md, `mau-report`) is
    above `max`."""

    enabled: bool = True
    # seeds (000): "用户流失率超 50% 则需排查功能或体验问题"
    max: float = Field(default=0.5, ge=0, le=1)
    severity: Severity = "critical"
    action_zh: str = _text(
        "排查功能与体验问题:查看退出节点、核心路径转化与首屏加载,定位用户流失的原因"
    )
    action_en: str = _text(
        "Investigate features and experience: read the exit pages, the key-path funnel and "
        "first-screen load times to find where users are lost"
    )


class FirstScreenLoad(Strict):
    """Fires when the `quantile` of first-screen loads (`load_ms`) over the last complete week
    is above `max_ms`."""

    enabled: bool = True
    # seeds (000): "将首屏加载时间控制在 2 秒内"; the 75th percentile, so that the target holds
    # for most loads, not only for the typical one (002: over 3 s, churn rises by 50%)
    max_ms: int = Field(default=2_000, ge=1, le=600_000)
    quantile: float = Field(default=0.75, gt=0, lt=1)
    # not from the seeds: a percentile of a handful of loads says little
    min_loads: int = Field(default=30, ge=1)
    severity: Severity = "warning"
    action_zh: str = _text(
        "优化首屏加载:预加载、图片懒加载、代码分包,优先加载核心内容,把首屏控制在 2 秒内"
    )
    action_en: str = _text(
        "Speed up the first screen: preloading, lazy-loaded images, code subpackages and core "
        "content first, to keep it within 2 s"
    )


class Promotion(Strict):
    """A promotion the operator ran, from `start` to `end` (app-local dates, inclusive)."""

    name: str = Field(min_length=1, max_length=60)
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Promotion:
        if self.end < self.start:
            raise ValueError(f"promotion {self.name!r} ends ({self.end}) before it starts")
        return self


class PromotionCliff(Strict):
    """Fires when weekly actives in the `after_weeks` weeks after a promotion's end are, on
    average, at least `max_drop` below their mean during the promotion."""

    enabled: bool = True
    # seeds (000): "过度依赖短期活动,促销结束后易出现 MAU 断崖式下滑"; the seeds give no
    # figure: two weeks after the end, a fall of 30% or more is called a cliff
    after_weeks: int = Field(default=2, ge=1, le=8)
    max_drop: float = Field(default=0.3, gt=0, le=1)
    severity: Severity = "critical"
    promotions: list[Promotion] = Field(default_factory=list, max_length=200)
    action_zh: str = _text(
        "促销结束后月活断崖式下滑:搭配长效留存机制(积分—等级—权益、签到、会员日),承接活动带来的用户"
    )
    action_en: str = _text(
        "MAU fell off a cliff after the promotion: add long-term retention (points, levels and "
        "benefits, check-ins, member day) to keep the users it brought"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> PromotionCliff:
        names = [p.name for p in self.promotions]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"promotion names must be unique; repeated: {', '.join(twice)}")
        return self


class LoyalHalved(Strict):
    """Fires for a loyal user (active in at least `min_active_weeks` of the `baseline_weeks`
    weeks before) whose visits per week in the last `recent_weeks` weeks are at most
    `max_ratio` of their weekly mean before, in the first week this holds."""

    enabled: bool = True
    # seeds (002): "通过行为数据识别流失信号" — a loyal user's visits halving is the earliest
    # such signal; the seeds give no window: 8 weeks of history, 6 of them active
    baseline_weeks: int = Field(default=8, ge=2, le=52)
    min_active_weeks: int = Field(default=6, ge=1, le=52)
    recent_weeks: int = Field(default=2, ge=1, le=8)
    # "halved": at most 50% of the weekly mean before
    max_ratio: float = Field(default=0.5, ge=0, lt=1)
    severity: Severity = "warning"
    action_zh: str = _text("忠实用户访问减半:尽快触达(专属客服回访、会员专属福利),了解原因并挽回")
    action_en: str = _text(
        "A loyal user's visits halved: reach out soon (a personal follow-up, a member-only "
        "benefit) to learn why and win them back"
    )

    @model_validator(mode="after")
    def _within(self) -> LoyalHalved:
        if self.min_active_weeks > self.baseline_weeks:
            raise ValueError(
                f"min_active_weeks ({self.min_active_weeks}) is above baseline_weeks "
                f"({self.baseline_weeks})"
            )
        return self


class RiskCrossed(Strict):
    """Fires when a user's churn-risk score reaches the playbook's `risk.high_risk` from below
    (a first score is the baseline, not a crossing)."""

    enabled: bool = True
    severity: Severity = "warning"
    action_zh: str = _text(
        "流失风险升高:按用户价值与流失原因推送专属召回福利(如即将过期的无门槛券)"
    )
    action_en: str = _text(
        "Churn risk is high: send a win-back offer matched to the user's value and reasons "
        "(e.g. a no-threshold coupon about to expire)"
    )


class Webhook(Strict):
    """Where alerts are POSTed as JSON (null: nowhere; the dashboard still lists them), and
    how delivery is retried: waits of `backoff_s`, doubling up to `max_backoff_s`."""

    url: AnyHttpUrl | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=1.0, ge=0, le=600)
    max_backoff_s: float = Field(default=60.0, ge=0, le=3600)
    # user-level alerts (a loyal user's visits halved, a user's risk crossed the line) are
    # POSTed one by one, for a CRM; false keeps them in the alert list only, for a chat bot
    user_alerts: bool = True


class AlertRules(Strict):
    """The alerts section: one entry per rule, and the webhook they are delivered to."""

    weekly_revisits: WeeklyRevisits = WeeklyRevisits()
    churn_rate: ChurnRate = ChurnRate()
    first_screen_load: FirstScreenLoad = FirstScreenLoad()
    promotion_cliff: PromotionCliff = PromotionCliff()
    loyal_halved: LoyalHalved = LoyalHalved()
    risk_crossed: RiskCrossed = RiskCrossed()
    webhook: Webhook = Webhook()
