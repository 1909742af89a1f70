"""Engagement metrics against an independent plain-Python reference.

The reference below is written from the metric definitions (zoneinfo for app-local days, sets
and counters for persons), not from the SQL. Hypothesis compares every field of every metric
on small random event sets; hand-built cases pin down answers worked out by hand: local
midnight in Asia/Shanghai, America/New_York across both DST switches, an anonymous device
merged into a user, duplicate events, empty periods, February, and Sunday/Monday weeks.

Each test runs once per event-store engine in `ENGINES`.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from liucun.analytics.activity import activity
from liucun.analytics.activity_source import Scope
from liucun.analytics.lifecycle import lifecycle
from liucun.analytics.mau_report import mau_report
from liucun.analytics.params import Period, RetentionType
from liucun.analytics.retention import RetentionQuery, retention
from liucun.analytics.stickiness import stickiness
from liucun.warehouse.store import EventStore
from tests.reference_stores import APP, ENGINES, events_store

ID_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-4a57-9a55-0c2b8f3e7d11")


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    """One raw event; `ts` is a UTC instant."""

    event_id: str
    event: str
    ts: datetime
    anon: str | None = None
    user: str | None = None
    platform: str | None = None
    channel: str | None = None  # properties.channel

    def raw(self) -> dict[str, Any]:
        e: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.anon is not None:
            e["anonymous_id"] = self.anon
        if self.user is not None:
            e["user_id"] = self.user
        if self.event == "page_view":
            e["page"] = "pages/home"
        if self.event == "order_paid":
            e["amount"] = "9.90"
            e["properties"] = {"order_id": f"o-{self.event_id}"}
        if self.platform is not None:
            e["platform"] = self.platform
        if self.channel is not None:
            e.setdefault("properties", {})["channel"] = self.channel
        return e


_counter = iter(range(1_000_000_000))


def ev(event: str, ts: str, anon: str | None = None, user: str | None = None) -> Ev:
    """A hand-built event with a fresh id; `ts` like "2026-03-01T15:59:59Z"."""
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    return Ev(str(uuid.uuid5(ID_NAMESPACE, f"hand-{next(_counter)}")), event, moment, anon, user)


# --------------------------------------------------------------------------- stores


StoreFactory = Callable[[Sequence[Sequence[Ev]], str], AbstractContextManager[EventStore]]


@pytest.fixture(params=ENGINES)
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A fresh store per call (see `reference_stores.events_store`), for one engine."""
    return functools.partial(events_store, request.param)


# --------------------------------------------------------------------------- reference


def p_start(day: date, period: Period, sunday: bool) -> date:
    if period == Period.day:
        return day
    if period == Period.month:
        return date(day.year, day.month, 1)
    # Monday: weekday() 0; Sunday start: Sunday is isoweekday() 7
    back = day.isoweekday() % 7 if sunday else day.isoweekday() - 1
    return day - timedelta(days=back)


def p_next(start: date, period: Period) -> date:
    if period == Period.day:
        return start + timedelta(days=1)
    if period == Period.week:
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def p_list(first: date, last: date, period: Period, sunday: bool) -> list[date]:
    out = []
    p = p_start(first, period, sunday)
    while p <= last:
        out.append(p)
        p = p_next(p, period)
    return out


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def matches(name: str, event: str) -> bool:
    if event == "visit":
        return name == "app_open"
    if event == "any":
        return True
    return name == event


class Ref:
    """The stored events (deduplicated), as persons doing events on app-local days."""

    def __init__(self, events: Sequence[Ev], tz: str) -> None:
        first: dict[str, Ev] = {}
        for e in events:
            first.setdefault(e.event_id, e)
        self.events = list(first.values())
        self.links: dict[str, str] = {}
        for e in sorted(self.events, key=lambda e: e.ts):
            if e.event == "identify":
                assert e.anon is not None and e.user is not None
                self.links.setdefault(e.anon, e.user)
        zone = ZoneInfo(tz)
        # (person, local day, event name) per stored event
        self.rows = [(self.person(e), e.ts.astimezone(zone).date(), e.event) for e in self.events]

    def person(self, e: Ev) -> str:
        distinct = e.user if e.user is not None else e.anon
        assert distinct is not None
        return self.links.get(distinct, distinct)

    def counts(self, event: str) -> dict[str, Counter[date]]:
        """person → local day → number of `event` events."""
        out: dict[str, Counter[date]] = defaultdict(Counter)
        for person, day, name in self.rows:
            if matches(name, event):
                out[person][day] += 1
        return out

    def days(self, event: str) -> dict[str, set[date]]:
        return {p: set(c) for p, c in self.counts(event).items()}

    def active(self, event: str, first: date, last: date) -> set[str]:
        return {p for p, ds in self.days(event).items() if any(first <= d <= last for d in ds)}

    def first_seen(self) -> dict[str, date]:
        out: dict[str, date] = {}
        for person, day, _ in self.rows:
            out[person] = min(out.get(person, day), day)
        return out

    def event_count(self, name: str, day: date) -> int:
        return sum(1 for _, d, n in self.rows if n == name and d == day)


def ref_activity(ref: Ref, scope: Scope, event: str) -> dict[str, Any]:
    days = []
    for d in day_range(scope.first_day, scope.last_day):
        dau = len(ref.active(event, d, d))
        wau = len(ref.active(event, d - timedelta(days=6), d))
        mau = len(ref.active(event, d - timedelta(days=29), d))
        days.append(
            {
                "day": d,
                "dau": dau,
                "wau": wau,
                "mau": mau,
                "stickiness": dau / mau if mau else 0.0,
                "page_views": ref.event_count("page_view", d),
                "visits": ref.event_count("app_open", d),
            }
        )
    months = []
    for m in p_list(scope.first_day, scope.last_day, Period.month, False):
        end = p_next(m, Period.month) - timedelta(days=1)
        lo, hi = max(m, scope.first_day), min(end, scope.last_day)
        months.append(
            {
                "month": m,
                "mau": len(ref.active(event, lo, hi)),
                "complete": scope.first_day <= m and end <= scope.last_day,
            }
        )
    return {
        "first_day": scope.first_day,
        "last_day": scope.last_day,
        "event": event,
        "days": days,
        "months": months,
    }


def ref_retention(ref: Ref, scope: Scope, q: RetentionQuery) -> list[dict[str, Any]]:
    sunday = scope.week_starts_sunday
    cps = p_list(scope.first_day, scope.last_day, q.period, sunday)
    lo = cps[0]

    def period_of(d: date) -> date:
        return p_start(d, q.period, sunday)

    starts = ref.days(q.start_event)
    members: dict[date, set[str]] = defaultdict(set)
    if q.type == RetentionType.first_time:
        # first start event ever, but one after the range's last day is not known yet
        for person, ds in starts.items():
            if min(ds) <= scope.last_day:
                members[period_of(min(ds))].add(person)
    else:
        for person, ds in starts.items():
            for d in ds:
                if lo <= d <= scope.last_day:
                    members[period_of(d)].add(person)
    returned: dict[str, set[date]] = {
        person: {period_of(d) for d in ds if lo <= d <= scope.last_day}
        for person, ds in ref.days(q.return_event).items()
    }
    out = []
    for i, c in enumerate(cps):
        group = members.get(c, set())
        length = min(q.intervals, len(cps) - i)
        counts = [len(group)]
        for k in range(1, length):
            wanted = set(cps[i + k : i + length]) if q.cumulative else {cps[i + k]}
            counts.append(sum(1 for p in group if returned.get(p, set()) & wanted))
        out.append({"start": c, "size": len(group), "counts": counts})
    return out


def ref_lifecycle(ref: Ref, scope: Scope, event: str, period: Period) -> list[dict[str, Any]]:
    sunday = scope.week_starts_sunday
    first_seen = {p: p_start(d, period, sunday) for p, d in ref.first_seen().items()}
    # Whole periods, so days before first_day count, but nothing after last_day: the brief
    # leaves this open; it is how retention and stickiness treat the range's end, and it keeps
    # a range's answer from changing when later days arrive.
    by_period: dict[date, set[str]] = defaultdict(set)
    for person, ds in ref.days(event).items():
        for d in ds:
            if d <= scope.last_day:
                by_period[p_start(d, period, sunday)].add(person)
    out = []
    for p in p_list(scope.first_day, scope.last_day, period, sunday):
        prev = p_start(p - timedelta(days=1), period, sunday)
        now, before = by_period.get(p, set()), by_period.get(prev, set())
        out.append(
            {
                "start": p,
                "new": sum(1 for x in now if first_seen[x] == p),
                "returning": sum(1 for x in now if first_seen[x] < p and x in before),
                "resurrecting": sum(1 for x in now if first_seen[x] < p and x not in before),
                "dormant": -len(before - now),
            }
        )
    return out


def ref_stickiness(
    ref: Ref, scope: Scope, event: str, period: Period, min_events: int, cumulative: bool
) -> dict[str, Any]:
    sunday = scope.week_starts_sunday
    n = len(p_list(scope.first_day, scope.last_day, period, sunday))
    ks: list[int] = []
    for per_day in ref.counts(event).values():
        per_period: Counter[date] = Counter()
        for d, c in per_day.items():
            if scope.first_day <= d <= scope.last_day:
                per_period[p_start(d, period, sunday)] += c
        k = sum(1 for c in per_period.values() if c >= min_events)
        if k:
            ks.append(k)
    persons = [sum(1 for k in ks if (k >= j if cumulative else k == j)) for j in range(1, n + 1)]
    return {
        "period": period,
        "periods": n,
        "min_events": min_events,
        "cumulative": cumulative,
        "persons": persons,
    }


def band(value: float | None, low: float, high: float, inside: str) -> str:
    """The status words of docs/metrics.md: `no data` when there is no value."""
    if value is None:
        return "no data"
    return "below" if value < low else "above" if value > high else inside


def ref_mau_report(ref: Ref, scope: Scope, event: str) -> dict[str, Any]:
    last = scope.last_day
    month = date(last.year, last.month, 1)
    month_end = p_next(month, Period.month) - timedelta(days=1)
    counted = day_range(month, last)
    active = ref.active(event, month, last)
    mean_uv = sum(len(ref.active(event, d, d)) for d in counted) / len(counted)
    ratio = len(active) / mean_uv if mean_uv else None
    prev_month = p_start(month - timedelta(days=1), Period.month, False)
    previous = ref.active(event, prev_month, month - timedelta(days=1))
    churned = len(previous - active)
    churn = churned / len(previous) if previous else None
    weeks = [
        w
        for w in {p_start(d, Period.week, scope.week_starts_sunday) for d in counted}
        if w >= month and w + timedelta(days=6) <= last
    ]
    opens = ref.counts("app_open")
    revisits, pairs = 0, 0
    for per_day in opens.values():
        for w in weeks:
            n = sum(c for d, c in per_day.items() if w <= d <= w + timedelta(days=6))
            if n:
                revisits += n - 1
                pairs += 1
    weekly = revisits / pairs if weeks and pairs else None
    return {
        "month": month,
        "last_day": last,
        "complete": last >= month_end,
        "mau": len(active),
        "mean_daily_uv": mean_uv,
        "mau_to_daily_uv": ratio,
        "mau_ratio_status": band(ratio, 15.0, 20.0, "within"),
        "weekly_revisits": weekly,
        "revisit_weeks": len(weeks),
        "revisits_status": band(weekly, 2.0, float("inf"), "ok"),
        "previous_mau": len(previous),
        "churned": churned,
        "churn_rate": churn,
        "churn_status": band(churn, 0.0, 0.5, "ok"),
    }


# --------------------------------------------------------------------------- comparing


def norm(value: Any) -> Any:
    """Dataclasses as dicts, floats rounded, so that results compare with `==`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def scope_of(tz: str, first: date, last: date, sunday: bool = False) -> Scope:
    return Scope(APP, tz, first, last, sunday)


def d(s: str) -> date:
    return date.fromisoformat(s)


# --------------------------------------------------------------------------- hypothesis

ZONE_NAMES = ["Asia/Shanghai", "America/New_York", "UTC"]
# Bases whose 70 days cover February 2026, both New York DST switches and year ends of months.
BASES = [date(2026, 1, 10), date(2026, 2, 20), date(2026, 9, 25), date(2026, 10, 20)]
KINDS = ["app_open", "app_open", "app_open", "page_view", "order_paid", "share", "identify"]
ANONS = ["dev-0", "dev-1", "dev-2", "dev-3"]
USERS = ["u-0", "u-1"]
ACTIVITY_EVENTS = ["visit", "any", "order_paid"]
EVENTS = ["visit", "any", "order_paid", "share", "page_view"]

raw_event_st = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(ANONS),
    st.one_of(st.none(), st.sampled_from(USERS)),
    st.sampled_from(USERS),
    st.integers(0, 69),  # day offset
    st.integers(0, 23),  # hour (UTC)
    st.integers(0, 59),  # minute
)


@dataclass(frozen=True)
class Scenario:
    tz: str
    base: date
    batches: list[list[Ev]]
    first: date
    last: date
    sunday: bool

    @property
    def events(self) -> list[Ev]:
        return [e for b in self.batches for e in b]

    def scope(self) -> Scope:
        return scope_of(self.tz, self.first, self.last, self.sunday)

    def describe(self) -> str:
        """The scenario as readable lines, for hypothesis to show with a failure."""
        zone = ZoneInfo(self.tz)
        week = "sunday" if self.sunday else "monday"
        lines = [f"{self.tz} {self.first} .. {self.last} (weeks from {week})"]
        for n, b in enumerate(self.batches):
            for e in b:
                local = e.ts.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
                lines.append(
                    f"  batch {n} {e.event_id[:8]} {e.event:<10} anon={e.anon} "
                    f"user={e.user} {e.ts:%Y-%m-%dT%H:%M:%SZ} (local {local})"
                )
        return "\n".join(lines)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    tz = draw(st.sampled_from(ZONE_NAMES))
    base = draw(st.sampled_from(BASES))
    specs = draw(st.lists(raw_event_st, min_size=1, max_size=34))
    origin = datetime(base.year, base.month, base.day, tzinfo=UTC)
    events = []
    for i, (kind, anon, user, id_user, day, hour, minute) in enumerate(specs):
        # i seconds: no two events share an instant, so the earliest identify is well defined
        ts = origin + timedelta(days=day, hours=hour, minutes=minute, seconds=i)
        who = id_user if kind == "identify" else user
        events.append(Ev(str(uuid.uuid5(ID_NAMESPACE, f"gen-{i}")), kind, ts, anon, who))
    # duplicates: the same event (same id) sent again, in the same or a later batch
    for j in draw(st.lists(st.integers(0, len(events) - 1), max_size=6)):
        at = draw(st.integers(0, len(events)))
        events.insert(at, events[j % len(events)])
    cut = draw(st.integers(0, len(events)))
    batches = [events[:cut], events[cut:]]
    first = base + timedelta(days=draw(st.integers(-5, 69)))
    last = first + timedelta(days=draw(st.integers(0, 74)))
    return Scenario(tz, base, batches, first, last, draw(st.booleans()))


BOUNDED = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    # no explain phase: it reruns a failure many times over, each run on a new store
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)


@BOUNDED
@given(sc=scenarios())
def test_activity_matches_reference(make_store: StoreFactory, sc: Scenario) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for event in ACTIVITY_EVENTS:
            got = activity(store, sc.scope(), event)
            assert norm(got) == norm(ref_activity(ref, sc.scope(), event)), event


@BOUNDED
@given(
    sc=scenarios(),
    kind=st.sampled_from(list(RetentionType)),
    cumulative=st.booleans(),
    intervals=st.integers(1, 6),
    start_event=st.sampled_from(EVENTS),
    return_event=st.sampled_from(EVENTS),
)
def test_retention_matches_reference(
    make_store: StoreFactory,
    sc: Scenario,
    kind: RetentionType,
    cumulative: bool,
    intervals: int,
    start_event: str,
    return_event: str,
) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for period in Period:
            q = RetentionQuery(period, intervals, kind, start_event, return_event, cumulative)
            got = retention(store, sc.scope(), q)
            assert norm(got) == norm(ref_retention(ref, sc.scope(), q)), q


@BOUNDED
@given(sc=scenarios(), event=st.sampled_from(EVENTS))
def test_lifecycle_matches_reference(make_store: StoreFactory, sc: Scenario, event: str) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for period in Period:
            got = lifecycle(store, sc.scope(), event, period)
            assert norm(got) == norm(ref_lifecycle(ref, sc.scope(), event, period)), period


@BOUNDED
@given(
    sc=scenarios(),
    event=st.sampled_from(EVENTS),
    min_events=st.integers(1, 2),
    cumulative=st.booleans(),
)
def test_stickiness_matches_reference(
    make_store: StoreFactory, sc: Scenario, event: str, min_events: int, cumulative: bool
) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for period in Period:
            got = stickiness(store, sc.scope(), event, period, min_events, cumulative)
            want = ref_stickiness(ref, sc.scope(), event, period, min_events, cumulative)
            assert norm(got) == norm(want), period


@BOUNDED
@given(sc=scenarios())
def test_mau_report_matches_reference(make_store: StoreFactory, sc: Scenario) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for event in ACTIVITY_EVENTS:
            got = mau_report(store, sc.scope(), event)
            assert norm(got) == norm(ref_mau_report(ref, sc.scope(), event)), event


# --------------------------------------------------------------------------- by hand


def day_row(
    day: str, dau: int, wau: int, mau: int, stick: float, pv: int, visits: int
) -> dict[str, Any]:
    return {
        "day": d(day),
        "dau": dau,
        "wau": wau,
        "mau": mau,
        "stickiness": stick,
        "page_views": pv,
        "visits": visits,
    }


def cohort(start: str, *counts: int) -> dict[str, Any]:
    return {"start": d(start), "size": counts[0], "counts": list(counts)}


def life(start: str, new: int, returning: int, resurrecting: int, dormant: int) -> dict[str, Any]:
    return {
        "start": d(start),
        "new": new,
        "returning": returning,
        "resurrecting": resurrecting,
        "dormant": dormant,
    }


def check(got: Any, want: Any, ref_value: Any) -> None:
    """The function and the reference both give the hand-worked answer."""
    assert norm(got) == norm(want)
    assert norm(ref_value) == norm(want)


def test_shanghai_local_midnight(make_store: StoreFactory) -> None:
    tz = "Asia/Shanghai"  # UTC+8: 16:00:00Z is local midnight
    events = [
        ev("app_open", "2026-03-01T15:59:59Z", anon="dev-1"),  # 03-01 23:59:59
        ev("app_open", "2026-03-01T16:00:00Z", anon="dev-2"),  # 03-02 00:00:00
        ev("page_view", "2026-03-01T16:00:01Z", anon="dev-1"),  # 03-02
    ]
    ref = Ref(events, tz)
    scope = scope_of(tz, d("2026-03-01"), d("2026-03-02"))
    with make_store([events], tz) as store:
        got = activity(store, scope, "visit")
        want = {
            "first_day": d("2026-03-01"),
            "last_day": d("2026-03-02"),
            "event": "visit",
            "days": [
                day_row("2026-03-01", 1, 1, 1, 1.0, 0, 1),
                day_row("2026-03-02", 1, 2, 2, 0.5, 1, 1),
            ],
            "months": [{"month": d("2026-03-01"), "mau": 2, "complete": False}],
        }
        check(got, want, ref_activity(ref, scope, "visit"))

        got_any = activity(store, scope, "any")
        assert [(x.day, x.dau, x.wau, x.stickiness) for x in got_any.days] == [
            (d("2026-03-01"), 1, 1, 1.0),
            (d("2026-03-02"), 2, 2, 1.0),
        ]

        want_life = [life("2026-03-01", 1, 0, 0, 0), life("2026-03-02", 1, 0, 0, -1)]
        check(
            lifecycle(store, scope, "visit", Period.day),
            want_life,
            ref_lifecycle(ref, scope, "visit", Period.day),
        )

        q = RetentionQuery(Period.day, 3, RetentionType.first_time, "any", "any")
        want_ret = [cohort("2026-03-01", 1, 1), cohort("2026-03-02", 1)]
        check(retention(store, scope, q), want_ret, ref_retention(ref, scope, q))


def test_new_york_across_dst_switches(make_store: StoreFactory) -> None:
    tz = "America/New_York"
    events = [
        # spring forward on 2026-03-08: midnight is 05:00Z before it, 04:00Z after it
        ev("app_open", "2026-03-08T04:59:59Z", anon="a"),  # 03-07 23:59:59 EST
        ev("app_open", "2026-03-08T05:00:00Z", anon="b"),  # 03-08 00:00:00 EST
        ev("app_open", "2026-03-09T03:59:59Z", anon="c"),  # 03-08 23:59:59 EDT
        ev("app_open", "2026-03-09T04:00:00Z", anon="d"),  # 03-09 00:00:00 EDT
        # fall back on 2026-11-01: midnight is 04:00Z before it, 05:00Z after it
        ev("app_open", "2026-11-01T03:59:59Z", anon="e"),  # 10-31 23:59:59 EDT
        ev("app_open", "2026-11-01T04:00:00Z", anon="f"),  # 11-01 00:00:00 EDT
        ev("page_view", "2026-11-02T04:59:59Z", anon="g"),  # 11-01 23:59:59 EST
        ev("app_open", "2026-11-02T04:59:59Z", anon="g"),  # 11-01 23:59:59 EST
        ev("app_open", "2026-11-02T05:00:00Z", anon="h"),  # 11-02 00:00:00 EST
    ]
    ref = Ref(events, tz)
    spring = scope_of(tz, d("2026-03-07"), d("2026-03-09"))
    fall = scope_of(tz, d("2026-10-31"), d("2026-11-02"))
    with make_store([events], tz) as store:
        want_spring = {
            "first_day": d("2026-03-07"),
            "last_day": d("2026-03-09"),
            "event": "visit",
            "days": [
                day_row("2026-03-07", 1, 1, 1, 1.0, 0, 1),
                day_row("2026-03-08", 2, 3, 3, 2 / 3, 0, 2),
                day_row("2026-03-09", 1, 4, 4, 0.25, 0, 1),
            ],
            "months": [{"month": d("2026-03-01"), "mau": 4, "complete": False}],
        }
        check(activity(store, spring, "visit"), want_spring, ref_activity(ref, spring, "visit"))

        # events from March are within the 30-day window of neither fall day
        want_fall = {
            "first_day": d("2026-10-31"),
            "last_day": d("2026-11-02"),
            "event": "visit",
            "days": [
                day_row("2026-10-31", 1, 1, 1, 1.0, 0, 1),
                day_row("2026-11-01", 2, 3, 3, 2 / 3, 1, 2),
                day_row("2026-11-02", 1, 4, 4, 0.25, 0, 1),
            ],
            "months": [
                {"month": d("2026-10-01"), "mau": 1, "complete": False},
                {"month": d("2026-11-01"), "mau": 3, "complete": False},
            ],
        }
        check(activity(store, fall, "visit"), want_fall, ref_activity(ref, fall, "visit"))

        want_sticky = {
            "period": Period.day,
            "periods": 3,
            "min_events": 1,
            "cumulative": False,
            "persons": [4, 0, 0],
        }
        check(
            stickiness(store, fall, "any", Period.day),
            want_sticky,
            ref_stickiness(ref, fall, "any", Period.day, 1, False),
        )
        # g did two events on 11-01 local (a page view and a visit, both 04:59:59Z)
        want_sticky2 = dict(want_sticky, min_events=2, persons=[1, 0, 0])
        check(
            stickiness(store, fall, "any", Period.day, min_events=2),
            want_sticky2,
            ref_stickiness(ref, fall, "any", Period.day, 2, False),
        )


IDENTITY_EVENTS = [
    ev("app_open", "2026-01-05T10:00:00Z", anon="dev-9"),
    ev("app_open", "2026-02-01T10:00:00Z", anon="dev-9"),
    ev("identify", "2026-02-03T09:00:00Z", anon="dev-9", user="u-1"),
    ev("app_open", "2026-02-03T09:00:01Z", anon="dev-9", user="u-1"),
    ev("app_open", "2026-02-10T10:00:00Z", anon="dev-8"),
    ev("app_open", "2026-02-11T10:00:00Z", anon="dev-8"),
    ev("app_open", "2026-02-11T11:00:00Z", anon="dev-8"),
    # a later link of dev-9 to another user loses: dev-9 stays u-1
    ev("identify", "2026-03-05T10:00:00Z", anon="dev-9", user="u-2"),
    ev("app_open", "2026-03-05T10:00:01Z", anon="dev-7", user="u-2"),
    ev("app_open", "2026-03-06T10:00:00Z", anon="dev-9"),
]


def test_anonymous_device_merged_into_user(make_store: StoreFactory) -> None:
    tz = "UTC"
    events = IDENTITY_EVENTS
    ref = Ref(events, tz)
    q1 = scope_of(tz, d("2026-01-01"), d("2026-03-31"))
    with make_store([events[:3], events[3:]], tz) as store:
        months = activity(store, q1, "visit").months
        want_months = [
            {"month": d("2026-01-01"), "mau": 1, "complete": True},
            {"month": d("2026-02-01"), "mau": 2, "complete": True},  # u-1 (+ dev-9), dev-8
            {"month": d("2026-03-01"), "mau": 2, "complete": True},  # u-1 (via dev-9), u-2
        ]
        check(months, want_months, ref_activity(ref, q1, "visit")["months"])

        # the cohort is the anonymous first visit's month, January
        q = RetentionQuery(Period.month, 3, RetentionType.first_time, "visit", "visit")
        want_ret = [
            cohort("2026-01-01", 1, 1, 1),
            cohort("2026-02-01", 1, 0),
            cohort("2026-03-01", 1),
        ]
        check(retention(store, q1, q), want_ret, ref_retention(ref, q1, q))

        want_life = [
            life("2026-01-01", 1, 0, 0, 0),
            life("2026-02-01", 1, 1, 0, 0),
            life("2026-03-01", 1, 1, 0, -1),
        ]
        check(
            lifecycle(store, q1, "visit", Period.month),
            want_life,
            ref_lifecycle(ref, q1, "visit", Period.month),
        )

        # February 2026 has 28 days: dau 1 on 02-01, 02-03, 02-10, 02-11 → mean 4/28
        feb = scope_of(tz, d("2026-02-01"), d("2026-02-28"))
        want_mau = {
            "month": d("2026-02-01"),
            "last_day": d("2026-02-28"),
            "complete": True,
            "mau": 2,
            "mean_daily_uv": 4 / 28,
            "mau_to_daily_uv": 14.0,
            "mau_ratio_status": "below",
            # Monday weeks 02-02, 02-09, 02-16 (02-23 ends 03-01): u-1 1 visit, dev-8 3
            "weekly_revisits": 1.0,
            "revisit_weeks": 3,
            "revisits_status": "below",
            "previous_mau": 1,
            "churned": 0,
            "churn_rate": 0.0,
            "churn_status": "ok",
        }
        check(mau_report(store, feb, "visit"), want_mau, ref_mau_report(ref, feb, "visit"))

        # Sunday weeks 02-01, 02-08, 02-15, 02-22 (ends 02-28): u-1 visits 02-01 as dev-9 and
        # 02-03 as u-1, one person with one revisit; dev-8 two
        feb_sun = scope_of(tz, d("2026-02-01"), d("2026-02-28"), sunday=True)
        want_sun = dict(want_mau, weekly_revisits=1.5, revisit_weeks=4)
        check(
            mau_report(store, feb_sun, "visit"),
            want_sun,
            ref_mau_report(ref, feb_sun, "visit"),
        )


def test_duplicate_events_count_once(make_store: StoreFactory) -> None:
    tz = "UTC"
    e1 = ev("app_open", "2026-05-04T10:00:00Z", anon="dev-1")
    e2 = ev("app_open", "2026-05-04T11:00:00Z", anon="dev-1")
    e3 = ev("app_open", "2026-05-04T12:00:00Z", anon="dev-2")
    e4 = ev("page_view", "2026-05-04T12:00:01Z", anon="dev-2")
    e5 = ev("order_paid", "2026-05-05T09:00:00Z", anon="dev-2")
    batches = [[e1, e3, e3, e4], [e1, e2, e4, e5, e5]]
    ref = Ref([e for b in batches for e in b], tz)
    scope = scope_of(tz, d("2026-05-04"), d("2026-05-05"))
    with make_store(batches, tz) as store:
        assert store.count(APP) == 5
        got = activity(store, scope, "visit")
        want = {
            "first_day": d("2026-05-04"),
            "last_day": d("2026-05-05"),
            "event": "visit",
            "days": [
                day_row("2026-05-04", 2, 2, 2, 1.0, 1, 3),
                day_row("2026-05-05", 0, 2, 2, 0.0, 0, 0),
            ],
            "months": [{"month": d("2026-05-01"), "mau": 2, "complete": False}],
        }
        check(got, want, ref_activity(ref, scope, "visit"))

        # dev-1 visited twice on 05-04, dev-2 once (its copy is the same event)
        sticky = {
            "period": Period.day,
            "periods": 2,
            "min_events": 2,
            "cumulative": False,
            "persons": [1, 0],
        }
        check(
            stickiness(store, scope, "visit", Period.day, min_events=2),
            sticky,
            ref_stickiness(ref, scope, "visit", Period.day, 2, False),
        )
        # one paid order, sent three times
        orders = dict(sticky, persons=[0, 0])
        check(
            stickiness(store, scope, "order_paid", Period.day, min_events=2),
            orders,
            ref_stickiness(ref, scope, "order_paid", Period.day, 2, False),
        )
        # dev-2's page view, visit (05-04) and order (05-05): active both days with `any`
        any_sticky = dict(sticky, min_events=1, cumulative=True, persons=[2, 1])
        check(
            stickiness(store, scope, "any", Period.day, cumulative=True),
            any_sticky,
            ref_stickiness(ref, scope, "any", Period.day, 1, True),
        )


def test_empty_periods_are_zeros(make_store: StoreFactory) -> None:
    tz = "UTC"
    events = [
        ev("app_open", "2026-06-01T08:00:00Z", anon="dev-1"),  # Monday
        ev("app_open", "2026-06-22T08:00:00Z", anon="dev-1"),  # Monday, three weeks on
    ]
    ref = Ref(events, tz)
    june = scope_of(tz, d("2026-06-01"), d("2026-06-28"))
    may = scope_of(tz, d("2026-05-30"), d("2026-05-31"))
    with make_store([events], tz) as store:
        want_life = [
            life("2026-06-01", 1, 0, 0, 0),
            life("2026-06-08", 0, 0, 0, -1),
            life("2026-06-15", 0, 0, 0, 0),
            life("2026-06-22", 0, 0, 1, 0),
        ]
        check(
            lifecycle(store, june, "visit", Period.week),
            want_life,
            ref_lifecycle(ref, june, "visit", Period.week),
        )

        q = RetentionQuery(Period.week, 4, RetentionType.first_time, "visit", "visit")
        want_ret = [
            cohort("2026-06-01", 1, 0, 0, 1),
            cohort("2026-06-08", 0, 0, 0),
            cohort("2026-06-15", 0, 0),
            cohort("2026-06-22", 0),
        ]
        check(retention(store, june, q), want_ret, ref_retention(ref, june, q))
        cum = dataclasses.replace(q, cumulative=True)
        want_cum = [cohort("2026-06-01", 1, 1, 1, 1), *want_ret[1:]]
        check(retention(store, june, cum), want_cum, ref_retention(ref, june, cum))

        days = activity(store, june, "visit").days
        assert len(days) == 28
        assert norm(days[9]) == norm(day_row("2026-06-10", 0, 0, 1, 0.0, 0, 0))

        want_may = {
            "first_day": d("2026-05-30"),
            "last_day": d("2026-05-31"),
            "event": "visit",
            "days": [
                day_row("2026-05-30", 0, 0, 0, 0.0, 0, 0),
                day_row("2026-05-31", 0, 0, 0, 0.0, 0, 0),
            ],
            "months": [{"month": d("2026-05-01"), "mau": 0, "complete": False}],
        }
        check(activity(store, may, "visit"), want_may, ref_activity(ref, may, "visit"))

        sticky = {
            "period": Period.week,
            "periods": 1,
            "min_events": 1,
            "cumulative": False,
            "persons": [0],
        }
        check(
            stickiness(store, may, "visit", Period.week),
            sticky,
            ref_stickiness(ref, may, "visit", Period.week, 1, False),
        )

        # Monday weeks of May 2026: 05-04, 05-11, 05-18, 05-25 (ends 05-31)
        want_mau = {
            "month": d("2026-05-01"),
            "last_day": d("2026-05-31"),
            "complete": True,
            "mau": 0,
            "mean_daily_uv": 0.0,
            "mau_to_daily_uv": None,
            "mau_ratio_status": "no data",
            "weekly_revisits": None,
            "revisit_weeks": 4,
            "revisits_status": "no data",
            "previous_mau": 0,
            "churned": 0,
            "churn_rate": None,
            "churn_status": "no data",
        }
        check(mau_report(store, may, "visit"), want_mau, ref_mau_report(ref, may, "visit"))


def test_february_month_boundaries(make_store: StoreFactory) -> None:
    tz = "Asia/Shanghai"
    events = [
        ev("app_open", "2026-01-31T15:00:00Z", anon="dev-1"),  # 01-31 23:00
        ev("app_open", "2026-01-31T16:00:00Z", anon="dev-2"),  # 02-01 00:00
        ev("app_open", "2026-02-28T15:59:59Z", anon="dev-1"),  # 02-28 23:59:59
        ev("app_open", "2026-02-28T16:00:00Z", anon="dev-2"),  # 03-01 00:00
    ]
    ref = Ref(events, tz)
    q1 = scope_of(tz, d("2026-01-01"), d("2026-03-31"))
    with make_store([events], tz) as store:
        q = RetentionQuery(Period.month, 3, RetentionType.first_time, "visit", "visit")
        want = [
            cohort("2026-01-01", 1, 1, 0),
            cohort("2026-02-01", 1, 1),
            cohort("2026-03-01", 0),
        ]
        check(retention(store, q1, q), want, ref_retention(ref, q1, q))
        rq = dataclasses.replace(q, type=RetentionType.recurring)
        want_rec = [
            cohort("2026-01-01", 1, 1, 0),
            cohort("2026-02-01", 2, 1),
            cohort("2026-03-01", 1),
        ]
        check(retention(store, q1, rq), want_rec, ref_retention(ref, q1, rq))

        base = {
            "month": d("2026-02-01"),
            "weekly_revisits": None,
            "revisits_status": "no data",
            "previous_mau": 1,
        }
        feb28 = scope_of(tz, d("2026-02-01"), d("2026-02-28"))
        want28 = dict(
            base,
            last_day=d("2026-02-28"),
            complete=True,
            mau=2,
            mean_daily_uv=2 / 28,
            mau_to_daily_uv=28.0,
            mau_ratio_status="above",
            revisit_weeks=3,
            churned=0,
            churn_rate=0.0,
            churn_status="ok",
        )
        check(mau_report(store, feb28, "visit"), want28, ref_mau_report(ref, feb28, "visit"))

        feb27 = scope_of(tz, d("2026-02-20"), d("2026-02-27"))
        want27 = dict(
            base,
            last_day=d("2026-02-27"),
            complete=False,
            mau=1,
            mean_daily_uv=1 / 27,
            mau_to_daily_uv=27.0,
            mau_ratio_status="above",
            revisit_weeks=3,
            churned=1,
            churn_rate=1.0,
            churn_status="above",
        )
        check(mau_report(store, feb27, "visit"), want27, ref_mau_report(ref, feb27, "visit"))

        mar1 = scope_of(tz, d("2026-03-01"), d("2026-03-01"))
        want_mar = {
            "month": d("2026-03-01"),
            "last_day": d("2026-03-01"),
            "complete": False,
            "mau": 1,
            "mean_daily_uv": 1.0,
            "mau_to_daily_uv": 1.0,
            "mau_ratio_status": "below",
            "weekly_revisits": None,
            "revisit_weeks": 0,
            "revisits_status": "no data",
            "previous_mau": 2,
            "churned": 1,
            "churn_rate": 0.5,
            "churn_status": "ok",
        }
        check(mau_report(store, mar1, "visit"), want_mar, ref_mau_report(ref, mar1, "visit"))


def test_sunday_and_monday_weeks_give_different_cohorts(make_store: StoreFactory) -> None:
    tz = "UTC"
    events = [
        ev("app_open", "2026-06-07T09:00:00Z", anon="dev-1"),  # Sunday
        ev("app_open", "2026-06-08T09:00:00Z", anon="dev-2"),  # Monday
        ev("app_open", "2026-06-09T09:00:00Z", anon="dev-1"),  # Tuesday
    ]
    ref = Ref(events, tz)
    q = RetentionQuery(Period.week, 2, RetentionType.first_time, "visit", "visit")
    monday = scope_of(tz, d("2026-06-07"), d("2026-06-13"))
    sunday = scope_of(tz, d("2026-06-07"), d("2026-06-13"), sunday=True)
    with make_store([events], tz) as store:
        # Monday weeks: 06-01 (holds Sunday 06-07) and 06-08
        want_mon = [cohort("2026-06-01", 1, 1), cohort("2026-06-08", 1)]
        check(retention(store, monday, q), want_mon, ref_retention(ref, monday, q))
        # Sunday weeks: 06-07 .. 06-13 is one week
        want_sun = [cohort("2026-06-07", 2)]
        check(retention(store, sunday, q), want_sun, ref_retention(ref, sunday, q))

        want_life_mon = [life("2026-06-01", 1, 0, 0, 0), life("2026-06-08", 1, 1, 0, 0)]
        check(
            lifecycle(store, monday, "visit", Period.week),
            want_life_mon,
            ref_lifecycle(ref, monday, "visit", Period.week),
        )
        want_life_sun = [life("2026-06-07", 2, 0, 0, 0)]
        check(
            lifecycle(store, sunday, "visit", Period.week),
            want_life_sun,
            ref_lifecycle(ref, sunday, "visit", Period.week),
        )


def test_person_without_the_activity_event_does_not_hide_others(make_store: StoreFactory) -> None:
    """dev-2 only viewed a page: it is no one's visit, and must not change dev-1's counts."""
    tz = "UTC"
    events = [
        ev("app_open", "2026-03-01T11:00:00Z", anon="dev-1"),
        ev("page_view", "2026-03-01T12:00:00Z", anon="dev-2"),
    ]
    ref = Ref(events, tz)
    scope = scope_of(tz, d("2026-03-01"), d("2026-03-01"))
    with make_store([events], tz) as store:
        check(
            lifecycle(store, scope, "visit", Period.day),
            [life("2026-03-01", 1, 0, 0, 0)],
            ref_lifecycle(ref, scope, "visit", Period.day),
        )
        for kind in RetentionType:
            q = RetentionQuery(Period.day, 1, kind, "visit", "visit")
            check(
                retention(store, scope, q), [cohort("2026-03-01", 1)], ref_retention(ref, scope, q)
            )
