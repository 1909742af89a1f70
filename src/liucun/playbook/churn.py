"""The playbook's `churn` section: what silent and churned mean, per industry and user type.

The seeds (shared/seeds/002) define churn in three steps: by the last active time, per user type
(new users: the first 7 days) and industry; adjusted by the depth of behaviour ("30 days without
buying but still browsing" is less at risk than "neither buying nor browsing"; in education
"bought a course but not studying" is more at risk than "not bought but browsing"); then every
user carries a label: active, silent (potential churn) or churned. The defaults below are those
figures; docs/lifecycle.md gives the reasoning for each preset.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
EventName = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    """Playbook models refuse unknown keys: a typo must not silently drop a rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventCondition(Strict):
    """How often the user did `event` (on `page`, if given) in the last `within_days` app-local
    days up to and including the as-of day (`null`: ever); holds when the count is within
    [`at_least`, `at_most`]."""

    event: EventName
    page: str | None = Field(None, max_length=500)
    within_days: int | None = Field(None, ge=1, le=3660)
    at_least: int | None = Field(None, ge=0)
    at_most: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> EventCondition:
        if self.at_least is None and self.at_most is None:
            raise ValueError("give at_least or at_most (or both)")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"at_least ({self.at_least}) is above at_most ({self.at_most})")
        return self


class DepthSignal(Strict):
    """A pattern of behaviour that moves a user one step between active, silent and churned:
    `shift: 1` towards churned, `-1` towards active. Holds when every condition holds."""

    name: Slug
    zh: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)
    when: list[EventCondition] = Field(min_length=1, max_length=10)
    shift: Literal[-1, 1]
    applies_to: Literal["all", "new", "established"] = "all"


class Recency(Strict):
    """Days since the last activity (0 on a day the user was active) at which a user becomes
    silent, then churned."""

    silent_after_days: int = Field(ge=1, le=3650)
    churned_after_days: int = Field(ge=2, le=3650)

    @model_validator(mode="after")
    def _ordered(self) -> Recency:
        if self.churned_after_days <= self.silent_after_days:
            raise ValueError(
                f"churned_after_days ({self.churned_after_days}) must be above "
                f"silent_after_days ({self.silent_after_days})"
            )
        return self


class ChurnPreset(Strict):
    """One industry's churn definition."""

    zh: str = Field(min_length=1, max_length=100)
    en: str = Field(min_length=1, max_length=100)
    # the event that counts as activity; null: any event
    activity_event: EventName | None = None
    new_users: Recency
    established: Recency
    depth_signals: list[DepthSignal] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _unique_signals(self) -> ChurnPreset:
        names = [s.name for s in self.depth_signals]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"depth signal names must be unique; repeated: {', '.join(twice)}")
        return self


class ChurnRules(Strict):
    """The churn section: the industry preset in force and the windows shared by all presets."""

    industry: Slug = "ecommerce"
    # seeds (002): new users are those registered within 7 days
    new_user_days: int = Field(7, ge=1, le=365)
    # a user back from churned is labelled resurrected on the first days after the return
    resurrected_days: int = Field(7, ge=1, le=365)
    presets: dict[Slug, ChurnPreset]

    @model_validator(mode="after")
    def _industry_known(self) -> ChurnRules:
        if self.industry not in self.presets:
            raise ValueError(
                f"industry {self.industry!r} has no preset; presets: {', '.join(self.presets)}"
            )
        return self

    @property
    def preset(self) -> ChurnPreset:
        """The preset of the industry in force."""
        return self.presets[self.industry]
