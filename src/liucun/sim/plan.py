"""One day's behaviour as numbers: who opens the app when, which pages they see, what they pay.

A `DayPlan` holds sessions and their pages (pages are segments of sessions, in order); the
renderer turns it into events. Timing inside a session, relative to its `app_open`:

    app_open ─ open gap ─ [first page: load ─ page_view ─ dwell ─ page_leave]
             ─ [next page: navigation ─ page_view ─ dwell ─ page_leave] ... ─ hide gap ─ app_hide

A user's sessions of one day never overlap and the whole session lies inside that app-local day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from liucun.sim.clock import SimClock
from liucun.sim.config import USER_TYPES, SimConfig
from liucun.sim.industries import (
    BOT_HOURS,
    BOT_SCENE_WEIGHTS,
    CONSENT_WEIGHTS,
    DWELL_MAX_MS,
    DWELL_MEDIAN_MS,
    DWELL_SIGMA,
    INDUSTRIES,
    PATH_LENGTH,
    SCENE_WEIGHTS,
    TAPS_MAX,
    TAPS_MEAN,
    WEEKDAY_HOURS,
    WEEKEND_HOURS,
    Industry,
)
from liucun.sim.population import ONE_TIME, Population
from liucun.sim.segments import (
    exclusive_cumsum,
    segment_exclusive_cumsum,
    segment_ids,
    segment_positions,
    segment_rank,
    segment_sums,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MS = 1_000  # microseconds per millisecond
MAX_HUMAN_SESSIONS_PER_DAY = 20
MAX_BOT_SESSIONS_PER_DAY = 100
SESSION_LOAD_SIGMA = 0.35  # one user's first-screen loads scatter around their own mean
SHARE_RATE = 0.03  # per session, on its last page
CONSENT_AFTER_ORDER = 0.5  # a subscribe prompt right after paying ("order shipped" etc.)
CONSENT_OTHERWISE = 0.01
BOT_DWELL_MEDIAN_MS = 600.0
SESSION_GAP_US = 1_000 * MS  # at least a second between one user's sessions


@dataclass
class UserState:
    """What carries over from day to day: each user's number of sessions so far."""

    sessions: IntArray


@dataclass(frozen=True)
class DayPlan:
    """Sessions (`sess_*`, one per session) and their pages (`page_*`) of one app-local day.

    Times are absolute UTC microseconds. `sess_known`: the user_id is known from app_open on
    (the user logged in in an earlier session). `sess_ident`: the login session, in which an
    identify event follows app_open. `page_load_ms` is set on first pages only (0 elsewhere).
    `order_fen` has one amount per page with `page_order`, in page order.
    """

    day: int
    date: dt.date
    sess_user: IntArray
    sess_start_us: IntArray
    sess_end_us: IntArray
    sess_open_gap_us: IntArray
    sess_scene: npt.NDArray[np.int8]
    sess_known: BoolArray
    sess_ident: BoolArray
    sess_pages: IntArray
    page_session: IntArray
    page_step: IntArray
    page_view_us: IntArray
    page_dwell_us: IntArray
    page_load_ms: IntArray
    page_taps: IntArray
    page_order: BoolArray
    page_check_in: BoolArray
    page_share: BoolArray
    page_consent: BoolArray
    page_consent_result: npt.NDArray[np.int8]
    order_fen: IntArray

    @property
    def order_users(self) -> IntArray:
        """The user of each order, aligned with `order_fen`."""
        return self.sess_user[self.page_session[self.page_order]]


@dataclass(frozen=True)
class _Pages:
    """Page-level draws before the session is placed in the day (times are relative)."""

    session: IntArray
    step: IntArray
    pre_us: IntArray  # from the page's start to its page_view: load or navigation
    dwell_us: IntArray
    load_ms: IntArray
    taps: IntArray


def plan_day(
    day: int,
    config: SimConfig,
    population: Population,
    clock: SimClock,
    state: UserState,
    rng: np.random.Generator,
) -> DayPlan:
    """Draw day `day`'s sessions from the population's traits; advances `state`.

    Sessions come out in order of their start time (pages stay grouped by session).
    """
    industry = INDUSTRIES[config.industry]
    counts = _session_counts(day, config, population, bool(clock.weekend[day]), rng)
    active = np.flatnonzero(counts)
    per_user = counts[active]
    sess_user = np.repeat(active, per_user)
    sess_rank = segment_rank(per_user)  # 0 for the user's first session of the day
    sess_index = state.sessions[sess_user] + sess_rank
    state.sessions[active] += per_user
    login_at = population.login_at[sess_user]
    is_bot = population.is_bot[sess_user]

    n_pages = _path_lengths(rng, industry, is_bot)
    pages = _draw_pages(rng, population, sess_user, is_bot, n_pages)
    actions = _draw_page_actions(rng, config, population, sess_user, sess_rank, n_pages, pages)
    open_gap = rng.integers(100 * MS, 600 * MS, size=len(sess_user))
    hide_gap = rng.integers(20 * MS, 300 * MS, size=len(sess_user))
    page_span = pages.pre_us + pages.dwell_us
    duration = open_gap + segment_sums(page_span, n_pages) + hide_gap
    start_in_day = _place_sessions(rng, clock, day, per_user, duration, is_bot)
    start = clock.day_start_us[day] + start_in_day
    page_start = (start + open_gap)[pages.session] + segment_exclusive_cumsum(page_span, n_pages)
    plan = DayPlan(
        day=day,
        date=clock.dates[day],
        sess_user=sess_user,
        sess_start_us=start,
        sess_end_us=start + duration,
        sess_open_gap_us=open_gap,
        sess_scene=_draw_scenes(rng, is_bot),
        sess_known=sess_index > login_at,
        sess_ident=sess_index == login_at,
        sess_pages=n_pages,
        page_session=pages.session,
        page_step=pages.step,
        page_view_us=page_start + pages.pre_us,
        page_dwell_us=pages.dwell_us,
        page_load_ms=pages.load_ms,
        page_taps=pages.taps,
        page_order=actions.order,
        page_check_in=actions.check_in,
        page_share=actions.share,
        page_consent=actions.consent,
        page_consent_result=_choice(rng, len(pages.step), CONSENT_WEIGHTS),
        order_fen=_order_amounts_fen(rng, industry, int(actions.order.sum())),
    )
    return _in_start_order(plan)


@dataclass(frozen=True)
class _PageActions:
    """What happens on each page besides taps: pay, check in, share, answer a subscribe prompt."""

    order: BoolArray
    check_in: BoolArray
    share: BoolArray
    consent: BoolArray


def _draw_page_actions(
    rng: np.random.Generator,
    config: SimConfig,
    population: Population,
    sess_user: IntArray,
    sess_rank: IntArray,
    n_pages: IntArray,
    pages: _Pages,
) -> _PageActions:
    """Orders on the pay page; check-ins on the day's first home page; shares and subscribe
    prompts on a session's last page (a prompt is likeliest right after paying)."""
    industry = INDUSTRIES[config.industry]
    n = len(pages.step)
    kind = population.kind[sess_user][pages.session]
    human = ~population.is_bot[sess_user][pages.session]
    last_page = pages.step == n_pages[pages.session] - 1
    pay_success = industry.pay_success if config.pay_success is None else config.pay_success
    order = (pages.step == PATH_LENGTH - 1) & (rng.random(n) < pay_success)
    check_in_rate = np.array([config.check_in_rate[t] for t in USER_TYPES] + [0.0])[kind]
    first_of_day = sess_rank[pages.session] == 0
    check_in = (pages.step == 0) & first_of_day & (rng.random(n) < check_in_rate)
    share = last_page & human & (rng.random(n) < SHARE_RATE)
    consent_p = np.where(order, CONSENT_AFTER_ORDER, CONSENT_OTHERWISE)
    consent = last_page & human & (rng.random(n) < consent_p)
    return _PageActions(order=order, check_in=check_in, share=share, consent=consent)


def _in_start_order(plan: DayPlan) -> DayPlan:
    """The same plan with sessions sorted by start time, so a day's events stream in order."""
    by_start = np.argsort(plan.sess_start_us, kind="stable")
    n_pages = plan.sess_pages[by_start]
    first_page = exclusive_cumsum(plan.sess_pages)
    page_perm = segment_positions(first_page[by_start], n_pages)
    # orders are numbered by page; renumber them in the new page order
    order_number = np.cumsum(plan.page_order) - 1
    new_orders = page_perm[plan.page_order[page_perm]]
    return replace(
        plan,
        sess_user=plan.sess_user[by_start],
        sess_start_us=plan.sess_start_us[by_start],
        sess_end_us=plan.sess_end_us[by_start],
        sess_open_gap_us=plan.sess_open_gap_us[by_start],
        sess_scene=plan.sess_scene[by_start],
        sess_known=plan.sess_known[by_start],
        sess_ident=plan.sess_ident[by_start],
        sess_pages=n_pages,
        page_session=segment_ids(n_pages),
        page_step=plan.page_step[page_perm],
        page_view_us=plan.page_view_us[page_perm],
        page_dwell_us=plan.page_dwell_us[page_perm],
        page_load_ms=plan.page_load_ms[page_perm],
        page_taps=plan.page_taps[page_perm],
        page_order=plan.page_order[page_perm],
        page_check_in=plan.page_check_in[page_perm],
        page_share=plan.page_share[page_perm],
        page_consent=plan.page_consent[page_perm],
        page_consent_result=plan.page_consent_result[page_perm],
        order_fen=plan.order_fen[order_number[new_orders]],
    )


def _choice(rng: np.random.Generator, n: int, weights: tuple[float, ...]) -> npt.NDArray[np.int8]:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int8)


def _session_counts(
    day: int, config: SimConfig, population: Population, weekend: bool, rng: np.random.Generator
) -> IntArray:
    """Sessions per user on `day`: Poisson around the visit rate while alive, ≥ 1 on arrival.

    Bots keep the same rate every day of the week (no weekly rhythm is one of their tells).
    """
    alive = (population.first_day <= day) & (day < population.churn_day)
    human_factor = config.effective_weekend_factor if weekend else 1.0
    rate = population.visit_rate * np.where(population.is_bot, 1.0, human_factor)
    counts = np.zeros(population.size, dtype=np.int64)
    counts[alive] = rng.poisson(rate[alive])
    counts = np.minimum(
        counts, np.where(population.is_bot, MAX_BOT_SESSIONS_PER_DAY, MAX_HUMAN_SESSIONS_PER_DAY)
    )
    arriving = population.first_day == day
    counts[arriving] = np.maximum(counts[arriving], 1)
    one_time = population.kind == ONE_TIME
    scheduled = arriving | (population.second_day == day)
    counts[one_time] = scheduled[one_time].astype(np.int64)
    return counts


def _path_lengths(rng: np.random.Generator, industry: Industry, is_bot: BoolArray) -> IntArray:
    """Pages per session: move on along the key path with the industry's continue odds."""
    moves_on = rng.random((len(is_bot), PATH_LENGTH - 1)) < np.array(industry.continue_probs)
    lengths = 1 + np.cumprod(moves_on, axis=1).sum(axis=1)
    # bots open the home page and leave: they never browse, so never pay
    return np.where(is_bot, 1, lengths).astype(np.int64)


def _draw_pages(
    rng: np.random.Generator,
    population: Population,
    sess_user: IntArray,
    is_bot: BoolArray,
    n_pages: IntArray,
) -> _Pages:
    session = segment_ids(n_pages)
    step = segment_rank(n_pages)
    n = len(step)
    page_bot = is_bot[session]
    human_dwell = rng.lognormal(np.log(np.array(DWELL_MEDIAN_MS))[step], DWELL_SIGMA)
    bot_dwell = rng.lognormal(np.log(BOT_DWELL_MEDIAN_MS), 0.4, size=n)
    dwell_ms = np.where(page_bot, bot_dwell.clip(150, 2_000), human_dwell.clip(300, DWELL_MAX_MS))
    human_taps = np.minimum(rng.poisson(np.array(TAPS_MEAN)[step]), TAPS_MAX)
    taps = np.where(page_bot, rng.integers(0, 3, size=n), human_taps)
    # first-screen load scatters around the user's own mean (a mean-one lognormal factor)
    scatter = rng.lognormal(-(SESSION_LOAD_SIGMA**2) / 2, SESSION_LOAD_SIGMA, size=n)
    user_mean = population.mean_load_ms[sess_user][session]
    first = step == 0
    load_ms = np.where(first, np.maximum(np.rint(user_mean * scatter), 100), 0).astype(np.int64)
    navigation_us = rng.integers(80 * MS, 400 * MS, size=n)
    # page_load is stamped 1 ms before page_view on the first page
    pre_us = np.where(first, load_ms * MS + MS, navigation_us)
    return _Pages(
        session=session,
        step=step,
        pre_us=pre_us.astype(np.int64),
        dwell_us=(np.rint(dwell_ms) * MS).astype(np.int64),
        load_ms=load_ms,
        taps=taps.astype(np.int64),
    )


def _draw_scenes(rng: np.random.Generator, is_bot: BoolArray) -> npt.NDArray[np.int8]:
    human = _choice(rng, len(is_bot), SCENE_WEIGHTS)
    bot = _choice(rng, len(is_bot), BOT_SCENE_WEIGHTS)
    return np.where(is_bot, bot, human).astype(np.int8)


def _place_sessions(
    rng: np.random.Generator,
    clock: SimClock,
    day: int,
    per_user: IntArray,
    duration: IntArray,
    is_bot: BoolArray,
) -> IntArray:
    """Start of each session in µs after local midnight; `per_user` groups one user's sessions.

    Start times follow the hourly profile; one user's sessions are sorted and pushed apart by
    the durations of their earlier sessions, after squeezing the day by the group's total, so
    they never overlap and the last one ends before midnight.
    """
    n = len(duration)
    human_hours = WEEKEND_HOURS if clock.weekend[day] else WEEKDAY_HOURS
    hour = np.where(is_bot, _choice(rng, n, BOT_HOURS), _choice(rng, n, human_hours))
    fraction = (hour + rng.random(n)) / 24.0
    group = segment_ids(per_user)
    # fractions are in [0, 1), so adding the group id sorts within each group only
    fraction = np.sort(group + fraction) - group
    slot = duration + SESSION_GAP_US
    group_total = np.repeat(segment_sums(slot, per_user), per_user)
    room = np.maximum(clock.day_length_us(day) - group_total - 1, 0)
    return (fraction * room).astype(np.int64) + segment_exclusive_cumsum(slot, per_user)


def _order_amounts_fen(rng: np.random.Generator, industry: Industry, n: int) -> IntArray:
    """Order amounts in fen: a price point if the industry sells by price list, else lognormal."""
    if industry.prices_yuan:
        fen = np.rint(np.array(industry.prices_yuan) * 100).astype(np.int64)
        return fen[_choice(rng, n, industry.price_weights)]
    yuan = rng.lognormal(np.log(industry.amount_median_yuan), industry.amount_sigma, size=n)
    return np.maximum(np.rint(yuan * 100), 1).astype(np.int64)
