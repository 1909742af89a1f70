"""Turn a `DayPlan` into an Arrow table of events (SIM_EVENT_SCHEMA), all columns vectorised.

Layout of one session's events, in time order:

    app_open, [identify], page block, page block, ..., app_hide

and of one page block:

    [page_load (first page only)], page_view, <middle events>, page_leave

where the middle events are the page's taps, then its order_paid, check_in, share and
subscribe_consent, spread evenly (with jitter) over the dwell time. Every position is computed
by offset arithmetic (cumulative sums of block sizes), and each kind of event is scattered into
its positions at once.

Session-level events (app_open, identify, app_hide) carry no page; only app_open carries the
scene; only page_view carries a referrer_page (the previous page of the path, null on the
first); every event carries the user's platform.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from liucun.events.standard import PLATFORMS, STANDARD_EVENTS
from liucun.sim.arrow_columns import (
    amounts_from_fen,
    decimal_digits,
    fixed_width_strings,
    masked,
    take_strings,
    timestamps_us,
    uuid4_strings,
)
from liucun.sim.industries import CONSENT_RESULTS, INDUSTRIES, SCENES, SCREENS
from liucun.sim.plan import MS, DayPlan
from liucun.sim.population import Population
from liucun.sim.schema import SIM_EVENT_SCHEMA
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

EVENT_NAMES: tuple[str, ...] = (
    "app_open",
    "app_hide",
    "identify",
    "page_load",
    "page_view",
    "page_leave",
    "tap",
    "order_paid",
    "check_in",
    "share",
    "subscribe_consent",
)
assert set(EVENT_NAMES) <= set(STANDARD_EVENTS)
(APP_OPEN, APP_HIDE, IDENTIFY, PAGE_LOAD, PAGE_VIEW, PAGE_LEAVE) = range(6)
(TAP, ORDER_PAID, CHECK_IN, SHARE, SUBSCRIBE_CONSENT) = range(6, 11)
# middle events sit strictly inside the dwell: at (rank + 1 + JITTER·u) / (count + 1) of it
MIDDLE_JITTER = 0.8

_EVENT_DICTIONARY = pa.array(EVENT_NAMES, pa.string())
_PLATFORM_DICTIONARY = pa.array(PLATFORMS, pa.string())
_SCENE_DICTIONARY = pa.array(SCENES, pa.string())
_SCREEN_SIZES = np.array(SCREENS, dtype=np.float64)


@dataclass(frozen=True)
class _Layout:
    """Where each session and page block starts among the day's events."""

    total: int
    sess_offset: IntArray
    sess_count: IntArray
    page_offset: IntArray
    page_count: IntArray
    page_first: BoolArray
    page_middle: IntArray  # number of middle events per page

    @classmethod
    def of(cls, plan: DayPlan) -> _Layout:
        first = plan.page_step == 0
        middle = (
            plan.page_taps
            + plan.page_order
            + plan.page_check_in
            + plan.page_share
            + plan.page_consent
        ).astype(np.int64)
        page_count = 2 + first + middle
        sess_count = 2 + plan.sess_ident + segment_sums(page_count, plan.sess_pages)
        sess_offset = exclusive_cumsum(sess_count)
        page_offset = (sess_offset + 1 + plan.sess_ident)[
            plan.page_session
        ] + segment_exclusive_cumsum(page_count, plan.sess_pages)
        return cls(
            total=int(sess_count.sum()),
            sess_offset=sess_offset,
            sess_count=sess_count,
            page_offset=page_offset,
            page_count=page_count,
            page_first=first,
            page_middle=middle,
        )


@dataclass
class _Events:
    """Per-event NumPy columns being filled; `*_valid` masks mark non-null values."""

    kind: npt.NDArray[np.int8]
    ts: IntArray
    page_step: IntArray  # the step of the event's page, -1 for session-level events
    referrer_step: IntArray  # -1 where no referrer
    duration_ms: IntArray
    load_ms: IntArray
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    fen: IntArray
    properties: IntArray  # index into the day's properties dictionary

    @classmethod
    def empty(cls, n: int) -> _Events:
        return cls(
            kind=np.empty(n, dtype=np.int8),
            ts=np.empty(n, dtype=np.int64),
            page_step=np.full(n, -1, dtype=np.int64),
            referrer_step=np.full(n, -1, dtype=np.int64),
            duration_ms=np.zeros(n, dtype=np.int64),
            load_ms=np.zeros(n, dtype=np.int64),
            x=np.zeros(n, dtype=np.float64),
            y=np.zeros(n, dtype=np.float64),
            fen=np.zeros(n, dtype=np.int64),
            properties=np.zeros(n, dtype=np.int64),
        )


def render_day(
    plan: DayPlan, population: Population, industry_name: str, rng: np.random.Generator
) -> pa.Table:
    """The day's events as one table with SIM_EVENT_SCHEMA, sessions in order."""
    layout = _Layout.of(plan)
    events = _Events.empty(layout.total)
    _fill_session_events(plan, layout, events)
    _fill_page_events(plan, layout, events)
    event_session = segment_ids(layout.sess_count)
    event_user = plan.sess_user[event_session]
    _fill_middle_events(plan, layout, events, population, event_user, rng)
    properties = _properties_dictionary(plan, industry_name)
    known = plan.sess_known[event_session] | (
        plan.sess_ident[event_session] & (events.kind != APP_OPEN)
    )
    pages = pa.array(INDUSTRIES[industry_name].pages, pa.string())
    session_ids = uuid4_strings(rng, len(plan.sess_user))
    columns = {
        "event_id": uuid4_strings(rng, layout.total),
        "user_id": take_strings(population.user_ids, event_user, known),
        "anonymous_id": take_strings(population.anonymous_ids, event_user),
        "session_id": take_strings(session_ids, event_session),
        "event": take_strings(_EVENT_DICTIONARY, events.kind),
        "ts": timestamps_us(events.ts),
        "platform": take_strings(_PLATFORM_DICTIONARY, population.platform[event_user]),
        "page": take_strings(pages, events.page_step, events.page_step >= 0),
        "referrer_page": take_strings(pages, events.referrer_step, events.referrer_step >= 0),
        "scene": _scene_column(plan, layout),
        "duration_ms": masked(events.duration_ms, events.kind == PAGE_LEAVE, pa.int64()),
        "load_ms": masked(events.load_ms, events.kind == PAGE_LOAD, pa.int64()),
        "x": masked(events.x, events.kind == TAP, pa.float64()),
        "y": masked(events.y, events.kind == TAP, pa.float64()),
        "amount": amounts_from_fen(events.fen, events.kind == ORDER_PAID),
        "properties": take_strings(properties, events.properties),
    }
    return pa.Table.from_arrays(list(columns.values()), schema=SIM_EVENT_SCHEMA)


def _fill_session_events(plan: DayPlan, layout: _Layout, events: _Events) -> None:
    """app_open, identify and app_hide: one slot each at fixed places in the session."""
    opened = layout.sess_offset
    events.kind[opened] = APP_OPEN
    events.ts[opened] = plan.sess_start_us
    identified = opened[plan.sess_ident] + 1
    events.kind[identified] = IDENTIFY
    # the login happens during the open gap, before the first page renders
    ident_gap = plan.sess_open_gap_us[plan.sess_ident] // 2
    events.ts[identified] = plan.sess_start_us[plan.sess_ident] + ident_gap
    hidden = opened + layout.sess_count - 1
    events.kind[hidden] = APP_HIDE
    events.ts[hidden] = plan.sess_end_us


def _fill_page_events(plan: DayPlan, layout: _Layout, events: _Events) -> None:
    """page_load (first page), page_view and page_leave of every page block."""
    first = layout.page_first
    loaded = layout.page_offset[first]
    events.kind[loaded] = PAGE_LOAD
    events.ts[loaded] = plan.page_view_us[first] - MS
    events.page_step[loaded] = 0
    events.load_ms[loaded] = plan.page_load_ms[first]

    viewed = layout.page_offset + first
    events.kind[viewed] = PAGE_VIEW
    events.ts[viewed] = plan.page_view_us
    events.page_step[viewed] = plan.page_step
    events.referrer_step[viewed] = plan.page_step - 1  # -1 (no referrer) on the first page

    left = layout.page_offset + layout.page_count - 1
    events.kind[left] = PAGE_LEAVE
    events.ts[left] = plan.page_view_us + plan.page_dwell_us
    events.page_step[left] = plan.page_step
    events.duration_ms[left] = plan.page_dwell_us // MS


def _fill_middle_events(
    plan: DayPlan,
    layout: _Layout,
    events: _Events,
    population: Population,
    event_user: IntArray,
    rng: np.random.Generator,
) -> None:
    """Taps, order_paid, check_in, share and subscribe_consent between page_view and leave."""
    counts = layout.page_middle
    page = segment_ids(counts)
    rank = segment_rank(counts)
    where = segment_positions(layout.page_offset + layout.page_first + 1, counts)
    after_taps = rank - plan.page_taps[page]
    order = plan.page_order[page]
    extra = after_taps - order  # index among the page's check_in, share, consent
    check_in = plan.page_check_in[page]
    kind = np.select(
        [
            after_taps < 0,
            (after_taps == 0) & order,
            extra < check_in,
            extra < check_in + plan.page_share[page],
        ],
        [TAP, ORDER_PAID, CHECK_IN, SHARE],
        SUBSCRIBE_CONSENT,
    ).astype(np.int8)
    events.kind[where] = kind
    events.page_step[where] = plan.page_step[page]
    share_of_dwell = (rank + 1 + MIDDLE_JITTER * rng.random(len(rank))) / (counts[page] + 1)
    into_dwell = (plan.page_dwell_us[page] * share_of_dwell).astype(np.int64)
    events.ts[where] = plan.page_view_us[page] + into_dwell
    _fill_taps(where[kind == TAP], events, population, event_user, rng)
    events.fen[where[kind == ORDER_PAID]] = plan.order_fen
    _fill_properties_index(plan, where, kind, page, events, population, event_user)


def _fill_taps(
    where: IntArray,
    events: _Events,
    population: Population,
    event_user: IntArray,
    rng: np.random.Generator,
) -> None:
    """Tap points inside the user's screen; a bot always taps its own single point."""
    user = event_user[where]
    size = _SCREEN_SIZES[population.screen[user]]
    # to a tenth of a pixel, rounded down so a point stays inside [0, width) × [0, height)
    x = np.floor(rng.random(len(where)) * size[:, 0] * 10) / 10
    y = np.floor(rng.random(len(where)) * size[:, 1] * 10) / 10
    bot = population.is_bot[user]
    events.x[where] = np.where(bot, population.bot_x[user], x)
    events.y[where] = np.where(bot, population.bot_y[user], y)


def _properties_dictionary(plan: DayPlan, industry_name: str) -> pa.StringArray:
    """The day's distinct properties texts; `_fill_properties_index` points events into it.

    Order: "{}", one text per screen size (taps), one per consent result, then one per order.
    """
    template_id = INDUSTRIES[industry_name].template_id
    static = ["{}"]
    static += [_json({"screen_width": w, "screen_height": h}) for w, h in SCREENS]
    static += [_json({"template_id": template_id, "result": r}) for r in CONSENT_RESULTS]
    orders = _order_properties(plan)
    array = pa.concat_arrays([pa.array(static, pa.string()), orders])
    assert isinstance(array, pa.StringArray)
    return array


def _fill_properties_index(
    plan: DayPlan,
    where: IntArray,
    kind: npt.NDArray[np.int8],
    page: IntArray,
    events: _Events,
    population: Population,
    event_user: IntArray,
) -> None:
    taps = where[kind == TAP]
    events.properties[taps] = 1 + population.screen[event_user[taps]]
    consent = kind == SUBSCRIBE_CONSENT
    consent_base = 1 + len(SCREENS)
    events.properties[where[consent]] = consent_base + plan.page_consent_result[page[consent]]
    orders = where[kind == ORDER_PAID]
    order_base = consent_base + len(CONSENT_RESULTS)
    events.properties[orders] = order_base + np.arange(len(orders))


def _order_properties(plan: DayPlan) -> pa.StringArray:
    """`{"order_id":"o<yyyymmdd><8-digit number of the day>"}`: unique over the whole window."""
    prefix = f'{{"order_id":"o{plan.date:%Y%m%d}'.encode()
    suffix = b'"}'
    n = len(plan.order_fen)
    number = np.arange(1, n + 1, dtype=np.int64)
    chars = np.empty((n, len(prefix) + 8 + len(suffix)), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    chars[:, len(prefix) : len(prefix) + 8] = decimal_digits(number, 8)
    chars[:, len(prefix) + 8 :] = np.frombuffer(suffix, dtype=np.uint8)
    return fixed_width_strings(chars)


def _scene_column(plan: DayPlan, layout: _Layout) -> pa.Array:
    """The entry scene, on app_open only."""
    scene = np.zeros(layout.total, dtype=np.int64)
    scene[layout.sess_offset] = plan.sess_scene
    valid = np.zeros(layout.total, dtype=np.bool_)
    valid[layout.sess_offset] = True
    return take_strings(_SCENE_DICTIONARY, scene, valid)


def _json(value: dict[str, object]) -> str:
    return json.dumps(value, separators=(",", ":"))
