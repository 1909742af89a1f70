"""What a simulation is asked for: population size, period, industry and behaviour parameters.

Definitions used throughout `liucun.sim`:

- A *day* is an app-local calendar day: day `d` is the date `start + d` in `timezone`, from its
  local midnight (inclusive) to the next local midnight (exclusive). The simulated window is days
  `0 .. days-1`; every event timestamp lies inside it.
- A *user* is one device (one `anonymous_id`); some users log in and then also carry a `user_id`.
- A *user type* sets how often a user visits and how quickly they churn; bots are a separate
  kind of user (injected fake visitors) and have no user type of their own.
- *Visit rate* is the expected number of sessions on a weekday while the user is alive.
- *Daily churn hazard* is the probability that an alive user churns on a given day after their
  first; a churned user never comes back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from liucun.sim.industries import INDUSTRIES

USER_TYPES: tuple[str, ...] = ("loyal", "casual", "churn_prone", "one_time")
BOT_TYPE = "bot"
DEVICE_CLASSES: tuple[str, ...] = ("high", "mid", "low")


def _default_user_mix() -> dict[str, float]:
    return {"loyal": 0.15, "casual": 0.45, "churn_prone": 0.25, "one_time": 0.15}


def _default_visit_rate() -> dict[str, float]:
    # one_time users are scheduled (one or two visits), not rate-driven
    return {"loyal": 0.7, "casual": 0.18, "churn_prone": 0.3, "one_time": 0.0}


def _default_daily_churn() -> dict[str, float]:
    # one_time users leave after their last scheduled visit, so no hazard applies to them
    return {"loyal": 0.004, "casual": 0.015, "churn_prone": 0.06, "one_time": 0.0}


def _default_login_share() -> dict[str, float]:
    return {"loyal": 0.9, "casual": 0.55, "churn_prone": 0.35, "one_time": 0.15}


def _default_check_in_rate() -> dict[str, float]:
    return {"loyal": 0.25, "casual": 0.08, "churn_prone": 0.05, "one_time": 0.02}


def _default_uplift() -> dict[str, float]:
    return {"loyal": 0.02, "casual": 0.08, "churn_prone": 0.12, "one_time": 0.03}


def _default_device_mix() -> dict[str, float]:
    return {"high": 0.35, "mid": 0.45, "low": 0.20}


def _default_device_load_ms() -> dict[str, float]:
    return {"high": 1200.0, "mid": 2000.0, "low": 3500.0}


@dataclass(frozen=True)
class SimConfig:
    """Parameters of one simulation; the same config (seed included) gives the same bytes.

    Per-type dicts are keyed by `USER_TYPES`; device dicts by `DEVICE_CLASSES`.
    `uplift[t]` is the extra probability that a user of type `t` revisits when treated by a
    campaign: it does not change the events generated here, it is recorded in the ground truth
    so that holdout analyses can be checked against it later. The dict fields make a config
    unhashable; compare configs with `==`.
    """

    users: int = 20_000
    days: int = 90
    start: dt.date = dt.date(2026, 8, 1)
    timezone: str = "Asia/Shanghai"
    seed: int = 42
    industry: str = "ecommerce"
    # share of `users` that are injected fake visitors
    bot_share: float = 0.01
    user_mix: dict[str, float] = field(default_factory=_default_user_mix)
    visit_rate: dict[str, float] = field(default_factory=_default_visit_rate)
    daily_churn: dict[str, float] = field(default_factory=_default_daily_churn)
    login_share: dict[str, float] = field(default_factory=_default_login_share)
    # probability that a user's first session of a day contains a check-in
    check_in_rate: dict[str, float] = field(default_factory=_default_check_in_rate)
    uplift: dict[str, float] = field(default_factory=_default_uplift)
    # probability that a one_time user comes back once more before leaving for good
    one_time_return: float = 0.35
    device_mix: dict[str, float] = field(default_factory=_default_device_mix)
    # mean first-screen load per device class (ms); each user's own mean scatters around it
    device_load_ms: dict[str, float] = field(default_factory=_default_device_load_ms)
    # seed figure: each extra second of first-screen load raises the churn hazard by 30 %,
    # multiplicatively: hazard × (1 + load_churn_per_second) ** (load_s − load_baseline_s)
    load_churn_per_second: float = 0.30
    # the seeds' first-screen target (≤ 2 s): users at this load keep their type's base hazard
    load_baseline_s: float = 2.0
    # weekend visit rate ÷ weekday visit rate; None takes the industry's own figure
    weekend_factor: float | None = None
    # share of sessions reaching the pay page that pay; None takes the industry's own figure
    # (the seeds' bad case, "70% lost at the pay page", is 0.3)
    pay_success: float | None = None

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be at least 1")
        if self.seed < 0:
            raise ValueError("seed must be non-negative")
        if self.industry not in INDUSTRIES:
            raise ValueError(f"industry must be one of {sorted(INDUSTRIES)}")
        if not 0.0 <= self.bot_share < 1.0:
            raise ValueError("bot_share must be in [0, 1)")
        if self.pay_success is not None and not 0.0 <= self.pay_success <= 1.0:
            raise ValueError("pay_success must be in [0, 1]")
        ZoneInfo(self.timezone)  # raises for an unknown zone
        for name in (
            "user_mix",
            "visit_rate",
            "daily_churn",
            "login_share",
            "check_in_rate",
            "uplift",
        ):
            _check_keys(name, getattr(self, name), USER_TYPES)
        for name in ("device_mix", "device_load_ms"):
            _check_keys(name, getattr(self, name), DEVICE_CLASSES)
        if sum(self.user_mix.values()) <= 0 or sum(self.device_mix.values()) <= 0:
            raise ValueError("user_mix and device_mix need a positive total")
        if self.weekend_factor is not None and self.weekend_factor < 0:
            raise ValueError("weekend_factor must be non-negative")

    @property
    def end(self) -> dt.date:
        """The first app-local date after the window."""
        return self.start + dt.timedelta(days=self.days)

    @property
    def effective_weekend_factor(self) -> float:
        """The weekend ÷ weekday visit-rate ratio in force (config, else the industry's)."""
        if self.weekend_factor is not None:
            return self.weekend_factor
        return INDUSTRIES[self.industry].weekend_factor


def _check_keys(name: str, values: dict[str, float], expected: tuple[str, ...]) -> None:
    if set(values) != set(expected):
        raise ValueError(f"{name} must have exactly the keys {expected}")
    if any(v < 0 for v in values.values()):
        raise ValueError(f"{name} values must be non-negative")
