"""The playbook's `engage.segments` section: the named segments every app starts with, rule
tags, and the preview's sample size.

The seeds (shared/seeds/002) send each group its own offer: new users registered within 7 days
a welcome pack ("注册 7 天内的新用户 … 新人福利"), silent users "15 days inactive with a purchase
history" ("近 15 天未活跃但历史有消费") a win-back coupon, churned users an offer "by their value
and the reason they left". The defaults below are those groups, written in the rule language
(docs/segments.md); `default.yaml` cites each.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from liucun.engage.segment_rules import (
    AllCondition,
    Condition,
    EventCondition,
    LabelCondition,
    Rule,
    TagCondition,
    TraitCondition,
    walk,
)
from liucun.playbook.churn import Slug, Strict

Text = Annotated[str, Field(min_length=1, max_length=200)]


class NamedSegment(Strict):
    """A segment every app has without saving it (a saved segment of its name replaces it)."""

    zh: Text
    en: Text
    rule: Condition


class RuleTag(Strict):
    """A tag that the daily job gives to the users its rule selects and takes from the others."""

    zh: Text
    en: Text
    rule: Condition


def default_segments() -> dict[str, NamedSegment]:
    """The seeds' groups (module docstring); equal to `default.yaml`."""
    return {
        "silent_buyers": NamedSegment(
            zh="沉默买家:近 15 天未活跃但历史有消费",
            en="Silent buyers: inactive for 15 days, with a purchase history",
            rule=AllCondition(
                all=[
                    TraitCondition(trait="days_inactive", gte=15),
                    EventCondition(event="order_paid", at_least=1),
                ]
            ),
        ),
        "new_users_7d": NamedSegment(
            zh="新用户:首次使用 7 天内",
            en="New users: within their first 7 days",
            rule=TraitCondition(trait="age_days", lte=6),
        ),
        "churned_high_value": NamedSegment(
            zh="已流失的高价值用户(RFM 价值 ≥ 11,有消费)",
            en="Churned high-value users (RFM value ≥ 11, with orders)",
            rule=AllCondition(
                all=[
                    LabelCondition(label="churned"),
                    TraitCondition(trait="rfm_value", gte=11),
                    TraitCondition(trait="rfm_orders", gte=1),
                ]
            ),
        ),
    }


def default_rule_tags() -> dict[str, RuleTag]:
    return {
        "high_value": RuleTag(
            zh="高价值用户(RFM 价值 ≥ 11)",
            en="High-value users (RFM value ≥ 11)",
            rule=TraitCondition(trait="rfm_value", gte=11),
        )
    }


class SegmentRules(Strict):
    """Named segments, rule tags and how previews and refreshes behave."""

    # users listed with a preview's count (ours: a screenful)
    sample_size: int = Field(default=20, ge=1, le=500)
    named: dict[Slug, NamedSegment] = Field(default_factory=default_segments, max_length=200)
    rule_tags: dict[Slug, RuleTag] = Field(default_factory=default_rule_tags, max_length=100)

    @model_validator(mode="after")
    def _rule_tags_stand_alone(self) -> SegmentRules:
        # a rule tag refreshed from another rule tag would depend on the order of refreshing
        for name, tag in self.rule_tags.items():
            used = _tags_of(tag.rule) & set(self.rule_tags)
            if used:
                raise ValueError(
                    f"rule tag {name!r} uses rule tag(s) {', '.join(sorted(used))}: a rule tag's "
                    "rule may use manual tags only"
                )
        return self


def _tags_of(rule: Rule) -> set[str]:
    return {c.tag for c in walk(rule) if isinstance(c, TagCondition)}
