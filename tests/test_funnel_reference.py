"""Funnels against an independent plain-Python reference.

The reference below is written from the funnel definition (attempts from step-1 events, the
earliest matching event per step for `ordered`, the person's very next event for `strict`,
any step within the window for `any`; the best attempt per person; attribution to the earliest
attempt start), with lists and loops, not from the SQL. Hypothesis compares every field of
every step on small random event sets; hand-built cases pin answers worked out by hand.

Where the definition leaves a tie open (two attempt starts at the same instant with different
breakdown values, or, in strict order, two best attempts at the same instant with different
times), the reference accepts any of the admissible answers.

Each test runs once per event-store engine in `ENGINES`.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from liucun.analytics.activity_source import Scope
from liucun.analytics.funnel import FunnelBreakdown, FunnelQuery, funnel
from liucun.analytics.params import FunnelOrder
from liucun.warehouse.store import EventStore
from tests.reference_stores import APP, ENGINES, events_store

ID_NAMESPACE = uuid.UUID("0b6f7d1e-2c4a-4e0f-9d61-5a8e3c2b1f47")
ORDERED, STRICT, ANY = FunnelOrder.ordered, FunnelOrder.strict, FunnelOrder.any


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    """One raw event; `ts` is a UTC instant (to the µs)."""

    event_id: str
    event: str
    ts: datetime
    anon: str | None = None
    user: str | None = None
    platform: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def raw(self) -> dict[str, Any]:
        props = dict(self.properties)
        e: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if self.anon is not None:
            e["anonymous_id"] = self.anon
        if self.user is not None:
            e["user_id"] = self.user
        if self.platform is not None:
            e["platform"] = self.platform
        if self.event in ("page_view", "page_leave", "tap", "page_load"):
            e["page"] = "pages/home"
        if self.event == "page_leave":
            e["duration_ms"] = 1000
        if self.event == "page_load":
            e["load_ms"] = 300
        if self.event == "tap":
            e["x"], e["y"] = 10.0, 20.0
        if self.event in ("order_paid", "order_refunded"):
            e["amount"] = "9.90"
            props.setdefault("order_id", f"o-{self.event_id}")
        if props:
            e["properties"] = props
        return e


_counter = iter(range(1_000_000_000))


def utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


def ev(
    event: str,
    ts: str,
    anon: str | None = None,
    user: str | None = None,
    *,
    platform: str | None = None,
    props: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> Ev:
    """A hand-built event with a fresh id (unless given); `ts` like "2026-03-01T10:00:00Z"."""
    eid = event_id or str(uuid.uuid5(ID_NAMESPACE, f"hand-{next(_counter)}"))
    return Ev(eid, event, utc(ts), anon, user, platform, dict(props or {}))


def later(e: Ev, seconds: float, event: str | None = None, **changes: Any) -> Ev:
    """An event like `e` (fresh id), `seconds` after it."""
    return Ev(
        str(uuid.uuid5(ID_NAMESPACE, f"hand-{next(_counter)}")),
        event or e.event,
        e.ts + timedelta(seconds=seconds),
        changes.get("anon", e.anon),
        changes.get("user", e.user),
        changes.get("platform", e.platform),
        changes.get("properties", e.properties),
    )


# --------------------------------------------------------------------------- stores


StoreFactory = Callable[[Sequence[Sequence[Ev]], str], AbstractContextManager[Any]]


@pytest.fixture(params=ENGINES)
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A fresh store per call (see `reference_stores.events_store`), for one engine."""
    return functools.partial(events_store, request.param)


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class Outcome:
    """One person's funnel: the best reach, and the admissible breakdown values and
    seconds-between-steps of the best attempt (more than one only where the definition
    leaves a tie open)."""

    reach: int
    values: frozenset[str | None]
    seconds: frozenset[tuple[float, ...]]


def stored(batches: Sequence[Sequence[Ev]]) -> list[Ev]:
    """The events as stored: the first copy of each event id."""
    first: dict[str, Ev] = {}
    for e in (e for b in batches for e in b):
        first.setdefault(e.event_id.lower(), e)
    return list(first.values())


def persons_events(events: Sequence[Ev], scope: Scope) -> dict[str, list[Ev]]:
    """Each person's events inside the scope's local date range, by (ts, event_id).

    identify links an anonymous id to a user for all time (the earliest link wins); a person
    is the linked user of an event's id, else its user id, else its anonymous id.
    """
    links: dict[str, str] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if e.event == "identify":
            assert e.anon is not None and e.user is not None
            links.setdefault(e.anon, e.user)
    zone = ZoneInfo(scope.timezone)
    lo = datetime.combine(scope.first_day, time(), zone)
    hi = datetime.combine(scope.last_day + timedelta(days=1), time(), zone)
    out: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        if lo <= e.ts < hi:
            distinct = e.user if e.user is not None else e.anon
            assert distinct is not None
            out[links.get(distinct, distinct)].append(e)
    for evs in out.values():
        evs.sort(key=lambda e: (e.ts, e.event_id.lower()))
    return dict(out)


def micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def attempts(evs: list[Ev], q: FunnelQuery) -> list[tuple[Ev, int, list[datetime]]]:
    """(start event, reach, matched step times) for every attempt of one person."""
    steps, window = q.steps, timedelta(seconds=q.window_seconds)
    out: list[tuple[Ev, int, list[datetime]]] = []
    if q.order == ANY:
        for anchor in evs:
            if anchor.event not in steps:
                continue
            end = anchor.ts + window
            found = sum(
                1 for s in steps if any(e.event == s and anchor.ts <= e.ts <= end for e in evs)
            )
            out.append((anchor, found - 1, []))
        return out
    for i, first in enumerate(evs):
        if first.event != steps[0]:
            continue
        end = first.ts + window
        times = [first.ts]
        at = i  # strict: index of the last matched event in the person's sequence
        for k in range(1, len(steps)):
            if q.order == STRICT:
                if at + 1 < len(evs) and evs[at + 1].event == steps[k] and evs[at + 1].ts <= end:
                    at += 1
                    times.append(evs[at].ts)
                    continue
                break
            repeated = steps[k] in steps[:k]
            candidates = [
                e.ts
                for e in evs
                if e.event == steps[k] and (e.ts > times[-1] if repeated else e.ts >= times[-1])
            ]
            if not candidates or min(candidates) > end:
                break
            times.append(min(candidates))
        out.append((first, len(times) - 1, times))
    return out


def breakdown_value(e: Ev, breakdown: str | None) -> str | None:
    if breakdown is None:
        return None
    if breakdown.startswith("properties."):
        value = e.properties.get(breakdown.removeprefix("properties."))
        assert value is None or isinstance(value, str), "the reference reads text values only"
        return value
    value = getattr(e, breakdown)
    assert value is None or isinstance(value, str)
    return value


def reference_outcomes(events: Sequence[Ev], scope: Scope, q: FunnelQuery) -> dict[str, Outcome]:
    out = {}
    for person, evs in persons_events(events, scope).items():
        tries = attempts(evs, q)
        if not tries:
            continue
        best = max(r for _, r, _ in tries)
        latest = max(s.ts for s, r, _ in tries if r == best)
        seconds = frozenset(
            tuple(micros(b - a) / 1e6 for a, b in itertools.pairwise(times))
            for s, r, times in tries
            if r == best and s.ts == latest
        )
        earliest = min(s.ts for s, _, _ in tries)
        values = frozenset(breakdown_value(s, q.breakdown) for s, _, _ in tries if s.ts == earliest)
        out[person] = Outcome(best, values, seconds)
    return out


StepRow = tuple[int, str, int, float, float, int, float | None, float | None]
Table = dict[str | None, list[StepRow]]


def reference_table(
    chosen: Sequence[tuple[str | None, int, tuple[float, ...]]], q: FunnelQuery
) -> Table:
    """The funnel per breakdown value, from each person's (value, reach, seconds)."""
    n = len(q.steps)
    groups: dict[str | None, list[tuple[int, tuple[float, ...]]]] = defaultdict(list)
    for value, reach, seconds in chosen:
        groups[value].append((reach, seconds))
    if not groups:
        groups[None] = []
    table: Table = {}
    for value, people in groups.items():
        persons = [sum(1 for r, _ in people if r >= k) for k in range(n)]
        rows: list[StepRow] = []
        for k in range(n):
            if k == 0:
                step_conversion, drop_off = (1.0 if persons[0] else 0.0), 0
            else:
                before = persons[k - 1]
                step_conversion = persons[k] / before if before else 0.0
                drop_off = before - persons[k]
            secs = [s[k - 1] for r, s in people if r >= k] if k and q.order != ANY else []
            rows.append(
                (
                    k + 1,
                    q.steps[k],
                    persons[k],
                    persons[k] / persons[0] if persons[0] else 0.0,
                    step_conversion,
                    drop_off,
                    sum(secs) / len(secs) if secs else None,
                    statistics.median(secs) if secs else None,
                )
            )
        table[value] = rows
    return table


def table_of(result: list[FunnelBreakdown]) -> Table:
    out: Table = {}
    for g in result:
        assert g.value not in out, f"breakdown value {g.value!r} twice"
        out[g.value] = [
            (
                s.step,
                s.event,
                s.persons,
                s.conversion,
                s.step_conversion,
                s.drop_off,
                s.mean_seconds,
                s.median_seconds,
            )
            for s in g.steps
        ]
    return out


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-6


def same_table(got: Table, want: Table) -> bool:
    if got.keys() != want.keys():
        return False
    for value, rows in want.items():
        if len(got[value]) != len(rows):
            return False
        for g, w in zip(got[value], rows, strict=True):
            if g[:6] != w[:6] or not close(g[6], w[6]) or not close(g[7], w[7]):
                return False
    return True


def check_against_reference(
    result: list[FunnelBreakdown],
    events: Sequence[Ev],
    scope: Scope,
    q: FunnelQuery,
    profiles: Mapping[str, str | None] | None = None,
) -> None:
    """`result` equals the reference's answer for one of the admissible tie resolutions.
    With `profiles` (a `profile.NAME` breakdown) a person's group is their value there."""
    got = table_of(result)
    firsts = [g.steps[0].persons for g in result]
    assert firsts == sorted(firsts, reverse=True), f"groups not by first-step persons: {firsts}"
    if profiles is not None:
        q = FunnelQuery(q.steps, q.window_seconds, q.order)
    outcomes = reference_outcomes(events, scope, q)
    choices = [
        [
            (v, o.reach, s)
            for v in ([profiles.get(p)] if profiles is not None else sorted(o.values, key=str))
            for s in sorted(o.seconds)
        ]
        for p, o in outcomes.items()
    ]
    first_want = None
    for chosen in itertools.islice(itertools.product(*choices), 20_000):
        want = reference_table(chosen, q)
        if same_table(got, want):
            return
        first_want = first_want or want
    pytest.fail(
        f"funnel {q} disagrees with the reference\n got: {got}\nwant: {first_want}\n"
        f"per person: {outcomes}"
    )


def scope_of(tz: str, first: str, last: str) -> Scope:
    return Scope(APP, tz, date.fromisoformat(first), date.fromisoformat(last))


MARCH = scope_of("UTC", "2026-03-01", "2026-03-03")


def run(
    store: EventStore,
    events: Sequence[Ev],
    scope: Scope,
    steps: list[str],
    window: int,
    order: FunnelOrder = ORDERED,
    breakdown: str | None = None,
) -> list[FunnelBreakdown]:
    """The funnel, checked against the reference too (so hand cases also test the reference)."""
    q = FunnelQuery(steps, window, order, breakdown)
    result = funnel(store, scope, q)
    check_against_reference(result, events, scope, q)
    assert both_plans(store, scope, q) == result
    return result


def both_plans(
    store: EventStore, scope: Scope, q: FunnelQuery, person_values: pa.Table | None = None
) -> list[FunnelBreakdown]:
    """The funnel by the plan the store's engine does not pick (an ordered funnel has one
    plan per kind of as-of join); the answer must not depend on it."""
    native = store.dialect.asof_join_by_hash
    store.dialect.asof_join_by_hash = not native  # this store's own dialect instance
    try:
        return funnel(store, scope, q, person_values)
    finally:
        store.dialect.asof_join_by_hash = native


def persons(result: list[FunnelBreakdown]) -> dict[str | None, list[int]]:
    return {g.value: [s.persons for s in g.steps] for g in result}


def seconds(result: list[FunnelBreakdown], value: str | None = None) -> list[Any]:
    """(mean, median) of each step after the first, for one group."""
    group = next(g for g in result if g.value == value)
    return [(s.mean_seconds, s.median_seconds) for s in group.steps[1:]]


# --------------------------------------------------------------------------- hypothesis

ANONS = ("dev-0", "dev-1", "dev-2")
USERS = ("u-0", "u-1")
START = datetime(2026, 3, 1, tzinfo=UTC)
SPAN = 3 * 86400


@dataclass(frozen=True)
class Case:
    batches: list[list[Ev]]
    tz: str
    first_day: date
    last_day: date
    steps: list[str]
    window: int

    @property
    def events(self) -> list[Ev]:
        return stored(self.batches)

    @property
    def scope(self) -> Scope:
        return Scope(APP, self.tz, self.first_day, self.last_day)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    # second-resolution times, mostly from a few instants (and a second or so on) for ties
    instants = draw(st.lists(st.integers(0, SPAN - 1), min_size=1, max_size=5))
    near = st.tuples(st.sampled_from(instants), st.sampled_from([0, 0, 0, 1, 2, 60]))
    offsets = st.one_of(near.map(sum), st.integers(0, SPAN - 1))

    def moment() -> datetime:
        return START + timedelta(seconds=min(draw(offsets), SPAN - 1))

    # each anonymous id is linked to at most one user (no conflicting links)
    links = {a: draw(st.sampled_from((None, *USERS))) for a in ANONS}
    linked = [a for a in ANONS if links[a] is not None]
    actors: list[tuple[str | None, str | None]] = [(a, None) for a in ANONS]
    actors += [(None, u) for u in USERS]
    actors += [(a, links[a]) for a in linked]  # after login, SDKs send both ids
    platform = st.sampled_from((None, "wechat", "alipay"))
    events: list[Ev] = []
    for _ in range(draw(st.integers(0, 19))):  # with identifies, at most 25 events
        if events and draw(st.integers(0, 7)) == 0:
            events.append(draw(st.sampled_from(events)))  # a resend: same id, same event
            continue
        anon, user = draw(st.sampled_from(actors))
        name = draw(st.sampled_from("abcx"))
        eid = str(draw(st.uuids()))
        events.append(Ev(eid, name, moment(), anon, user, draw(platform)))
    for a in linked:
        for _ in range(draw(st.integers(0, 2))):
            eid = str(draw(st.uuids()))
            events.append(Ev(eid, "identify", moment(), a, links[a], draw(platform)))
    events = draw(st.permutations(events))
    cut = draw(st.integers(0, len(events)))
    first = date(2026, 2, 28) + timedelta(days=draw(st.integers(0, 3)))
    return Case(
        batches=[events[:cut], events[cut:]],
        tz=draw(st.sampled_from(("UTC", "Asia/Shanghai", "America/New_York"))),
        first_day=first,
        last_day=first + timedelta(days=draw(st.integers(0, 3))),
        steps=draw(st.lists(st.sampled_from("abc"), min_size=2, max_size=3)),
        window=draw(
            st.one_of(
                st.sampled_from((1, 2, 60, 3600, 86400, 2 * 86400)), st.integers(1, 2 * 86400)
            )
        ),
    )


@pytest.mark.parametrize("order", [ORDERED, STRICT, ANY])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_funnel_matches_reference(make_store: StoreFactory, order: FunnelOrder, case: Case) -> None:
    note(f"events: {case.events}")
    with make_store(case.batches, case.tz) as store:
        for breakdown in (None, "platform"):
            q = FunnelQuery(case.steps, case.window, order, breakdown)
            check_against_reference(funnel(store, case.scope, q), case.events, case.scope, q)
            check_against_reference(both_plans(store, case.scope, q), case.events, case.scope, q)


# --------------------------------------------------------------------------- by hand


def test_same_microsecond_counts_for_a_different_event(make_store: StoreFactory) -> None:
    a = ev("a", "2026-03-01T10:00:00.123456Z", "dev-1")
    events = [a, later(a, 0, "b")]
    with make_store([events], "UTC") as store:
        for order in (ORDERED, STRICT):
            result = run(store, events, MARCH, ["a", "b"], 60, order)
            assert persons(result) == {None: [1, 1]}
            assert seconds(result) == [(0.0, 0.0)]


def test_a_repeated_step_needs_a_strictly_later_event(make_store: StoreFactory) -> None:
    # dev-1: two `a` at the same µs; dev-2: the same plus one 0.5 s later
    a1 = ev("a", "2026-03-01T10:00:00.000001Z", "dev-1")
    a2 = ev("a", "2026-03-01T10:00:00.000001Z", "dev-2")
    events = [a1, later(a1, 0), a2, later(a2, 0), later(a2, 0.5)]
    with make_store([events], "UTC") as store:
        result = run(store, events, MARCH, ["a", "a"], 60)
        assert persons(result) == {None: [2, 1]}
        assert seconds(result) == [(0.5, 0.5)]
        step = result[0].steps[1]
        assert (step.conversion, step.step_conversion, step.drop_off) == (0.5, 0.5, 1)


def test_strict_ties_follow_event_id_order(make_store: StoreFactory) -> None:
    # same instant: dev-1's `a` sorts before its `b` by event id, dev-2's after
    t = "2026-03-01T10:00:00Z"
    events = [
        ev("a", t, "dev-1", event_id="7fffffff-0000-4000-8000-000000000000"),
        ev("b", t, "dev-1", event_id="80000000-0000-4000-8000-000000000000"),
        ev("a", t, "dev-2", event_id="f0000000-0000-4000-8000-000000000000"),
        ev("b", t, "dev-2", event_id="0f000000-0000-4000-8000-000000000000"),
    ]
    with make_store([events], "UTC") as store:
        assert persons(run(store, events, MARCH, ["a", "b"], 60, STRICT)) == {None: [2, 1]}
        assert persons(run(store, events, MARCH, ["a", "b"], 60, ORDERED)) == {None: [2, 2]}


@pytest.mark.parametrize("order", [ORDERED, STRICT, ANY])
def test_window_is_inclusive(make_store: StoreFactory, order: FunnelOrder) -> None:
    on = ev("a", "2026-03-01T10:00:00Z", "dev-1")
    over = ev("a", "2026-03-01T10:00:00Z", "dev-2")
    events = [on, later(on, 3600, "b"), over, later(over, 3600.000001, "b")]
    with make_store([events], "UTC") as store:
        result = run(store, events, MARCH, ["a", "b"], 3600, order)
        assert persons(result) == {None: [2, 1]}
        assert seconds(result) == [(None, None) if order == ANY else (3600.0, 3600.0)]


def test_strict_is_broken_by_an_event_in_between(make_store: StoreFactory) -> None:
    d1 = ev("a", "2026-03-01T10:00:00Z", "dev-1")  # a, x, b
    d2 = ev("a", "2026-03-01T10:00:00Z", "dev-2")  # a, b
    d3 = ev("a", "2026-03-01T10:00:00Z", "dev-3")  # a, a, b
    events = [d1, later(d1, 1, "x"), later(d1, 2, "b")]
    events += [d2, later(d2, 2, "b")]
    events += [d3, later(d3, 1), later(d3, 2, "b")]
    with make_store([events], "UTC") as store:
        strict = run(store, events, MARCH, ["a", "b"], 60, STRICT)
        # dev-2 in 2 s; dev-3 from its second `a`, in 1 s
        assert persons(strict) == {None: [3, 2]}
        assert seconds(strict) == [(1.5, 1.5)]
        ordered = run(store, events, MARCH, ["a", "b"], 60, ORDERED)
        # 2, 2, and 1 for dev-3 (the latest of its attempts that reach b)
        assert persons(ordered) == {None: [3, 3]}
        assert seconds(ordered) == [(pytest.approx(5 / 3), 2.0)]


def test_any_order(make_store: StoreFactory) -> None:
    d1 = ev("b", "2026-03-01T10:00:00Z", "dev-1")  # b then a, 10 s apart
    d2 = ev("c", "2026-03-01T10:00:00Z", "dev-2")  # c, b, a
    d3 = ev("b", "2026-03-01T10:00:00Z", "dev-3")  # b then a, 61 s apart
    events = [d1, later(d1, 10, "a"), d2, later(d2, 5, "b"), later(d2, 20, "a")]
    events += [d3, later(d3, 61, "a")]
    with make_store([events], "UTC") as store:
        anyway = run(store, events, MARCH, ["a", "b", "c"], 60, ANY)
        assert persons(anyway) == {None: [3, 2, 1]}
        assert seconds(anyway) == [(None, None), (None, None)]
        ordered = run(store, events, MARCH, ["a", "b", "c"], 60, ORDERED)
        assert persons(ordered) == {None: [3, 0, 0]}
        s2, s3 = ordered[0].steps[1:]
        assert (s2.conversion, s2.step_conversion, s2.drop_off) == (0.0, 0.0, 3)
        assert (s3.conversion, s3.step_conversion, s3.drop_off) == (0.0, 0.0, 0)


def test_identified_device_and_user_are_one_person(make_store: StoreFactory) -> None:
    t = "2026-03-01T10:00:00Z"
    view = ev("page_view", t, "dev-1")  # before login, on the device
    events = [
        view,
        later(view, 5, "identify", user="u-1"),
        later(view, 10, "order_paid", anon=None, user="u-1"),
        ev("page_view", t, "dev-2"),  # never identified: not u-2
        ev("order_paid", "2026-03-01T10:00:10Z", None, "u-2"),
        # dev-3 is linked to u-3 first, then to u-4: the earliest link wins
        ev("identify", t, "dev-3", "u-3"),
        ev("identify", "2026-03-01T10:00:01Z", "dev-3", "u-4"),
        ev("page_view", "2026-03-01T10:00:20Z", "dev-3"),
        ev("order_paid", "2026-03-01T10:00:30Z", None, "u-3"),
        ev("order_paid", "2026-03-01T10:00:25Z", None, "u-4"),
    ]
    steps = ["page_view", "order_paid"]
    with make_store([events], "UTC") as store:
        ordered = run(store, events, MARCH, steps, 60)
        assert persons(ordered) == {None: [3, 2]}  # u-1, dev-2, u-3
        assert seconds(ordered) == [(10.0, 10.0)]
        # u-1's identify comes between its page view and its payment
        strict = run(store, events, MARCH, steps, 60, STRICT)
        assert persons(strict) == {None: [3, 1]}
        assert seconds(strict) == [(10.0, 10.0)]


def test_duplicates_are_counted_once(make_store: StoreFactory) -> None:
    a = ev("a", "2026-03-01T10:00:00Z", "dev-1")
    b = later(a, 10, "b")
    batches = [[a, b, a], [b, a]]  # resent in the same batch and in a later one
    events = stored(batches)
    with make_store(batches, "UTC") as store:
        n = store.query("SELECT count(*) AS n FROM events", {}).column("n")[0].as_py()
        assert n == 2
        ordered = run(store, events, MARCH, ["a", "b"], 60)
        assert persons(ordered) == {None: [1, 1]}
        assert seconds(ordered) == [(10.0, 10.0)]
        # a stored copy of `a` would be the very next event after `a`
        assert persons(run(store, events, MARCH, ["a", "a"], 60, STRICT)) == {None: [1, 0]}


def test_only_attempts_inside_the_range(make_store: StoreFactory) -> None:
    events = [
        ev("a", "2026-03-01T23:59:59Z", "dev-1"),  # starts the day before the range
        ev("b", "2026-03-02T00:00:10Z", "dev-1"),
        ev("a", "2026-03-02T00:00:00Z", "dev-2"),
        ev("b", "2026-03-02T00:00:10Z", "dev-2"),
        ev("a", "2026-03-02T23:59:59Z", "dev-3"),
        ev("b", "2026-03-03T00:00:00Z", "dev-3"),  # completes the day after
    ]
    scope = scope_of("UTC", "2026-03-02", "2026-03-02")
    with make_store([events], "UTC") as store:
        for order in (ORDERED, STRICT):
            result = run(store, events, scope, ["a", "b"], 3600, order)
            assert persons(result) == {None: [2, 1]}
        # in any order, dev-1's `b` in the range starts an attempt of its own
        assert persons(run(store, events, scope, ["a", "b"], 3600, ANY)) == {None: [3, 1]}
        assert seconds(run(store, events, scope, ["a", "b"], 3600)) == [(10.0, 10.0)]


def test_shanghai_range_edges(make_store: StoreFactory) -> None:
    # 2026-03-01 in Asia/Shanghai is [2026-02-28T16:00Z, 2026-03-01T16:00Z)
    events = [
        ev("a", "2026-03-01T15:59:00Z", "dev-1"),
        ev("b", "2026-03-01T15:59:59Z", "dev-1"),  # last second: counts
        ev("a", "2026-03-01T15:59:00Z", "dev-2"),
        ev("b", "2026-03-01T16:00:00Z", "dev-2"),  # next local day: does not
        ev("a", "2026-02-28T16:00:00Z", "dev-3"),  # local midnight: counts
        ev("b", "2026-02-28T16:00:01Z", "dev-3"),
        ev("a", "2026-02-28T15:59:59Z", "dev-4"),  # the local day before
        ev("b", "2026-02-28T16:00:00Z", "dev-4"),
        ev("a", "2026-03-01T16:00:00Z", "dev-5"),
    ]
    scope = scope_of("Asia/Shanghai", "2026-03-01", "2026-03-01")
    with make_store([events], "Asia/Shanghai") as store:
        result = run(store, events, scope, ["a", "b"], 3600)
        assert persons(result) == {None: [3, 2]}
        assert seconds(result) == [(30.0, 30.0)]


def test_best_attempt_and_times(make_store: StoreFactory) -> None:
    steps = ["app_open", "page_view", "order_paid"]
    t = "2026-03-01T10:00:00Z"

    def person(anon: str, *times: tuple[str, float]) -> list[Ev]:
        first = ev("app_open", t, anon)
        return [first] + [later(first, s, name) for name, s in times]

    events = [
        # reaches all three from its first attempt (10 s to page_view); the second, later,
        # reaches only page_view (15 s): the furthest attempt's times count, not the latest's
        *person(
            "dev-1", ("page_view", 10), ("order_paid", 20), ("app_open", 30), ("page_view", 45)
        ),
        # both attempts reach all three: the later one's times count (30 s, 20 s)
        *person("dev-2", ("app_open", 100), ("page_view", 130), ("order_paid", 150)),
        *person("dev-3", ("page_view", 50)),
        *person("dev-4", ("page_view", 90), ("order_paid", 100)),
    ]
    with make_store([events], "UTC") as store:
        result = run(store, events, MARCH, steps, 1000)
    assert persons(result) == {None: [4, 4, 3]}
    # page_view: 10, 30, 50, 90 s; order_paid: 10, 20, 10 s
    assert seconds(result) == [(45.0, 40.0), (pytest.approx(40 / 3), 10.0)]
    s = result[0].steps
    assert [x.conversion for x in s] == [1.0, 1.0, 0.75]
    assert [x.step_conversion for x in s] == [1.0, 1.0, 0.75]
    assert [x.drop_off for x in s] == [0, 0, 1]
    assert s[0].mean_seconds is None and s[0].median_seconds is None


def test_breakdown_by_platform(make_store: StoreFactory) -> None:
    t = "2026-03-01T10:00:00Z"
    d1 = ev("a", t, "dev-1", platform="wechat")
    d4 = ev("a", t, "dev-4", platform="alipay")
    events = [
        # attributed to its first `a` (wechat), though its best attempt is the alipay one
        d1,
        later(d1, 100, platform="alipay"),
        later(d1, 110, "b", platform="web"),
        ev("a", t, "dev-2", platform="alipay"),
        ev("a", t, "dev-3"),  # no platform: a value of its own
        d4,
        later(d4, 20, "b"),
        # its `a` on web is before the range: the ios one is the first in range
        ev("a", "2026-02-28T23:00:00Z", "dev-5", platform="web"),
        ev("a", t, "dev-5", platform="ios"),
        ev("b", "2026-03-01T10:00:30Z", "dev-5", platform="ios"),
    ]
    with make_store([events], "UTC") as store:
        result = run(store, events, MARCH, ["a", "b"], 60, ORDERED, "platform")
    assert persons(result) == {"alipay": [2, 1], "wechat": [1, 1], None: [1, 0], "ios": [1, 1]}
    assert result[0].value == "alipay"
    assert seconds(result, "alipay") == [(20.0, 20.0)]
    assert seconds(result, "wechat") == [(10.0, 10.0)]
    assert seconds(result, "ios") == [(30.0, 30.0)]
    assert seconds(result, None) == [(None, None)]


def test_any_order_breakdown_uses_the_first_event_of_any_step(make_store: StoreFactory) -> None:
    events = [
        ev("b", "2026-03-01T10:00:00Z", "dev-1", platform="douyin"),
        ev("a", "2026-03-01T10:00:05Z", "dev-1", platform="wechat"),
        ev("a", "2026-03-01T10:00:00Z", "dev-2", platform="wechat"),
    ]
    with make_store([events], "UTC") as store:
        anyway = run(store, events, MARCH, ["a", "b"], 60, ANY, "platform")
        assert persons(anyway) == {"douyin": [1, 1], "wechat": [1, 0]}
        ordered = run(store, events, MARCH, ["a", "b"], 60, ORDERED, "platform")
        assert persons(ordered) == {"wechat": [2, 0]}


@pytest.mark.parametrize("order", [ORDERED, STRICT, ANY])
@pytest.mark.parametrize("breakdown", ["platform", "properties.channel"])
def test_breakdown_null_is_a_value_of_its_own(
    make_store: StoreFactory, order: FunnelOrder, breakdown: str
) -> None:
    # the first `a` has no platform and no channel; the later one has both
    first = ev("a", "2026-03-01T10:00:00Z", "dev-1")
    tagged = later(first, 10, platform="wechat", properties={"channel": "ad"})
    events = [first, tagged, later(first, 15, "b")]
    with make_store([events], "UTC") as store:
        q = FunnelQuery(["a", "b"], 60, order, breakdown)
        result = funnel(store, MARCH, q)
        assert persons(result) == {None: [1, 1]}
        check_against_reference(result, events, MARCH, q)


def test_breakdown_by_property(make_store: StoreFactory) -> None:
    t = "2026-03-01T10:00:00Z"
    d1 = ev("a", t, "dev-1", props={"channel": "ad"})
    d4 = ev("a", t, "dev-4", props={"channel": "ad"})
    events = [
        d1,
        later(d1, 10, "b", properties={}),
        ev("a", t, "dev-2", props={"channel": "organic"}),
        ev("a", t, "dev-3"),
        d4,
        later(d4, 20, "b", properties={"channel": "organic"}),
    ]
    with make_store([events], "UTC") as store:
        result = run(store, events, MARCH, ["a", "b"], 60, ORDERED, "properties.channel")
    assert persons(result) == {"ad": [2, 2], "organic": [1, 0], None: [1, 0]}
    assert result[0].value == "ad"
    assert seconds(result, "ad") == [(15.0, 15.0)]


def test_nobody_gives_one_empty_group(make_store: StoreFactory) -> None:
    events = [ev("x", "2026-03-01T10:00:00Z", "dev-1", platform="wechat")]
    zero = [(1, "a", 0, 0.0, 0.0, 0, None, None), (2, "b", 0, 0.0, 0.0, 0, None, None)]
    with make_store([events], "UTC") as store:
        for order in (ORDERED, STRICT, ANY):
            for breakdown in (None, "platform"):
                result = run(store, events, MARCH, ["a", "b"], 60, order, breakdown)
                assert table_of(result) == {None: zero}
    with make_store([], "UTC") as store:
        assert table_of(run(store, [], MARCH, ["a", "b"], 60)) == {None: zero}


def test_seventy_percent_leave_at_the_pay_page(make_store: StoreFactory) -> None:
    """The seed figure: of 100 persons who reach the pay page, 70 do not pay."""
    events = []
    for i in range(120):
        browse = ev("browse", f"2026-03-01T{8 + i // 60:02d}:{i % 60:02d}:00Z", f"dev-{i}")
        events.append(browse)
        if i < 100:  # 20 persons only browse
            events += [later(browse, 60, "cart"), later(browse, 120, "pay_page")]
        if i < 30:
            events.append(later(browse, 180, "pay"))
    with make_store([events], "UTC") as store:
        result = run(store, events, MARCH, ["browse", "cart", "pay_page", "pay"], 3600)
    assert persons(result) == {None: [120, 100, 100, 30]}
    pay = result[0].steps[3]
    assert pay.step_conversion == 0.30
    assert pay.drop_off == 70
    assert pay.conversion == 0.25
    assert (pay.mean_seconds, pay.median_seconds) == (60.0, 60.0)
