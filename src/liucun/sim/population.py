"""Who the simulated users are: type, device, arrival, churn day, visit rate, login, identifiers.

Everything a user does later is drawn per day from these fixed traits. Definitions:

- `first_day`: the day the user arrives; they always have a session that day.
- `churn_day`: the first day on which the user is gone for good (no events on or after it);
  `NO_CHURN` (a number ≥ days) when they are still alive at the end of the window. For the
  rate-driven types the user survives their first day and then churns each later day with
  probability `hazard = daily_churn[type] × (1 + load_churn_per_second) ** (load_s − baseline)`,
  where `load_s` is the user's own mean first-screen load in seconds. one_time users visit on
  `first_day` and maybe once more (`second_day`), and churn the day after their last visit.
- `login_at`: the number of earlier sessions before the session in which the user logs in
  (0: in their first session); `NEVER` for users who never log in.
- bots never log in, never churn, and tap always at their own single point (`bot_x`, `bot_y`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from liucun.sim.arrow_columns import fixed_width_strings, uuid4_strings
from liucun.sim.config import DEVICE_CLASSES, USER_TYPES, SimConfig
from liucun.sim.industries import INDUSTRIES, PLATFORM_WEIGHTS, SCREEN_WEIGHTS, SCREENS

BOT = len(USER_TYPES)  # the kind code of bots, after the user types
ONE_TIME = USER_TYPES.index("one_time")
NEVER = np.iinfo(np.int64).max // 4
# how widely users' own mean load scatters around their device class's mean (lognormal sigma)
USER_LOAD_SIGMA = 0.2
VISIT_RATE_SHAPE = 0.8  # gamma shape < 1: heavy-tailed visit frequency
MAX_VISIT_RATE = 12.0
BOT_RATE_MEDIAN = 6.0
LOGIN_SESSION_P = 0.5  # chance to log in at each session until they do
ONE_TIME_RETURN_GAP_P = 0.25  # geometric: days until a one_time user's second visit
_OPENID_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Population:
    """One entry per user in every array; codes index USER_TYPES (+ BOT), DEVICE_CLASSES, etc."""

    kind: npt.NDArray[np.int8]
    is_bot: npt.NDArray[np.bool_]
    device: npt.NDArray[np.int8]
    mean_load_ms: FloatArray
    first_day: IntArray
    second_day: IntArray  # one_time users' second visit, NEVER if none
    churn_day: IntArray
    visit_rate: FloatArray
    login_at: IntArray
    platform: npt.NDArray[np.int8]
    screen: npt.NDArray[np.int8]
    uplift: FloatArray
    bot_x: FloatArray
    bot_y: FloatArray
    anonymous_ids: pa.StringArray
    user_ids: pa.StringArray

    @property
    def size(self) -> int:
        return len(self.kind)


def draw_population(config: SimConfig, rng: np.random.Generator) -> Population:
    """Draw every user's fixed traits from `rng`."""
    n = config.users
    kind = _draw_kinds(config, rng)
    is_bot = kind == BOT
    device = _choice(rng, n, [config.device_mix[d] for d in DEVICE_CLASSES])
    device[is_bot] = 0  # scripted visitors run on fast emulators
    mean_load_ms = _draw_mean_load(config, rng, device)
    first_day = rng.integers(0, config.days, size=n, dtype=np.int64)
    load_factor = (1.0 + config.load_churn_per_second) ** (
        mean_load_ms / 1000.0 - config.load_baseline_s
    )
    second_day = _draw_second_visits(config, rng, kind, first_day, load_factor)
    churn_day = _draw_churn_days(config, rng, kind, first_day, second_day, load_factor)
    screen = _choice(rng, n, SCREEN_WEIGHTS)
    bot_x, bot_y = _draw_bot_taps(rng, screen)
    uplift_by_kind = np.array([config.uplift[t] for t in USER_TYPES] + [0.0])
    return Population(
        kind=kind,
        is_bot=is_bot,
        device=device,
        mean_load_ms=mean_load_ms,
        first_day=first_day,
        second_day=second_day,
        churn_day=churn_day,
        visit_rate=_draw_visit_rates(config, rng, kind),
        login_at=_draw_login_at(config, rng, kind),
        platform=_choice(rng, n, PLATFORM_WEIGHTS),
        screen=screen,
        uplift=uplift_by_kind[kind],
        bot_x=bot_x,
        bot_y=bot_y,
        anonymous_ids=uuid4_strings(rng, n),
        user_ids=_openids(rng, n),
    )


def _choice(rng: np.random.Generator, n: int, weights: object) -> npt.NDArray[np.int8]:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int8)


def _draw_kinds(config: SimConfig, rng: np.random.Generator) -> npt.NDArray[np.int8]:
    """Exactly round(users × bot_share) bots; the rest typed by `user_mix`, in random order."""
    n_bots = round(config.users * config.bot_share)
    humans = _choice(rng, config.users - n_bots, [config.user_mix[t] for t in USER_TYPES])
    kinds = np.concatenate([humans, np.full(n_bots, BOT, dtype=np.int8)])
    return rng.permutation(kinds)


def _draw_mean_load(
    config: SimConfig, rng: np.random.Generator, device: npt.NDArray[np.int8]
) -> FloatArray:
    device_mean = np.array([config.device_load_ms[d] for d in DEVICE_CLASSES])[device]
    # mean-one lognormal scatter, so a device class keeps its configured mean
    scatter = rng.lognormal(-(USER_LOAD_SIGMA**2) / 2, USER_LOAD_SIGMA, size=len(device))
    return device_mean * scatter


def _draw_second_visits(
    config: SimConfig,
    rng: np.random.Generator,
    kind: npt.NDArray[np.int8],
    first_day: IntArray,
    load_factor: FloatArray,
) -> IntArray:
    """one_time users come back once with a chance that slow loads lower, like churn raises."""
    n = len(kind)
    returns = rng.random(n) < np.clip(config.one_time_return / load_factor, 0.0, 1.0)
    gap = rng.geometric(ONE_TIME_RETURN_GAP_P, size=n)
    second = first_day + gap
    keep = (kind == ONE_TIME) & returns & (second < config.days)
    return np.where(keep, second, NEVER)


def _draw_churn_days(
    config: SimConfig,
    rng: np.random.Generator,
    kind: npt.NDArray[np.int8],
    first_day: IntArray,
    second_day: IntArray,
    load_factor: FloatArray,
) -> IntArray:
    base = np.array([config.daily_churn[t] for t in USER_TYPES] + [0.0])[kind]
    hazard = np.clip(base * load_factor, 0.0, 1.0)
    # geometric needs p > 0; users with no hazard get p = 1 and are reset to NEVER below
    lifetime = rng.geometric(np.where(hazard > 0, hazard, 1.0))
    churn = np.where(hazard > 0, first_day + lifetime, NEVER)
    last_visit = np.where(second_day < NEVER, second_day, first_day)
    churn = np.where(kind == ONE_TIME, last_visit + 1, churn)
    return np.where(churn < config.days, churn, NEVER)


def _draw_visit_rates(
    config: SimConfig, rng: np.random.Generator, kind: npt.NDArray[np.int8]
) -> FloatArray:
    mean = np.array([config.visit_rate[t] for t in USER_TYPES] + [0.0])[kind]
    mean = mean * INDUSTRIES[config.industry].visit_multiplier
    rate = rng.gamma(VISIT_RATE_SHAPE, 1.0, size=len(kind)) * mean / VISIT_RATE_SHAPE
    rate = np.minimum(rate, MAX_VISIT_RATE)
    bot_rate = rng.lognormal(np.log(BOT_RATE_MEDIAN), 0.5, size=len(kind)).clip(3.0, 60.0)
    return np.where(kind == BOT, bot_rate, rate)


def _draw_login_at(
    config: SimConfig, rng: np.random.Generator, kind: npt.NDArray[np.int8]
) -> IntArray:
    share = np.array([config.login_share[t] for t in USER_TYPES] + [0.0])[kind]
    logs_in = rng.random(len(kind)) < share
    earlier_sessions = rng.geometric(LOGIN_SESSION_P, size=len(kind)) - 1
    # one_time users have at most two sessions: log in in one of them or never
    earlier_sessions = np.where(kind == ONE_TIME, np.minimum(earlier_sessions, 1), earlier_sessions)
    return np.where(logs_in, earlier_sessions, NEVER)


def _draw_bot_taps(
    rng: np.random.Generator, screen: npt.NDArray[np.int8]
) -> tuple[FloatArray, FloatArray]:
    """Each bot's one tap point: a scripted click on the same pixel every time."""
    size = np.array(SCREENS, dtype=np.float64)[screen]
    x = np.round(rng.uniform(0.2, 0.8, len(screen)) * size[:, 0])
    y = np.round(rng.uniform(0.3, 0.9, len(screen)) * size[:, 1])
    return x, y


def _openids(rng: np.random.Generator, n: int) -> pa.StringArray:
    """WeChat-openid-like ids: "o" then 27 URL-safe base64 characters."""
    chars = np.empty((n, 28), dtype=np.uint8)
    chars[:, 0] = ord("o")
    chars[:, 1:] = _OPENID_ALPHABET[rng.integers(0, 64, size=(n, 27))]
    return fixed_width_strings(chars)
