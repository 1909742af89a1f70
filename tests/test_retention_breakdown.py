"""Retention broken down by a column or property of the start event, against a plain-Python
reference written from the definition: a cohort member's group is the value on the start
event that put them in the cohort (their first ever for first-time retention, their first in
the cohort's period for recurring retention; by time, then event id)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import given, note
from hypothesis import strategies as st

from liucun.analytics.activity_source import Scope
from liucun.analytics.params import Period, RetentionType
from liucun.analytics.retention import RetentionQuery, retention, retention_breakdown
from liucun.warehouse.store import EventStore
from tests.test_analytics_reference import (
    ANONS,
    BASES,
    BOUNDED,
    EVENTS,
    ID_NAMESPACE,
    KINDS,
    USERS,
    ZONE_NAMES,
    Ev,
    Ref,
    Scenario,
    StoreFactory,
    ev,
    make_store,  # noqa: F401  (the engine-parametrised store fixture)
    matches,
    norm,
    p_list,
    p_start,
    scope_of,
)

PLATFORMS = [None, "wechat", "alipay"]
CHANNELS = [None, "ad", "share"]


def value_of(e: Ev, breakdown: str) -> str | None:
    return e.platform if breakdown == "platform" else e.channel


def ref_breakdown(
    ref: Ref,
    scope: Scope,
    q: RetentionQuery,
    breakdown: str,
    profiles: Mapping[str, str | None] | None = None,
) -> dict[str | None, list[dict[str, Any]]]:
    """Per breakdown value, the cohorts as `retention` returns them, from the definition.
    With `profiles` (a `profile.NAME` breakdown) a person's group is their value there."""

    def group(e: Ev, person: str) -> str | None:
        return profiles.get(person) if profiles is not None else value_of(e, breakdown)

    sunday = scope.week_starts_sunday
    zone = ZoneInfo(scope.timezone)
    cps = p_list(scope.first_day, scope.last_day, q.period, sunday)

    def day_of(e: Ev) -> date:
        return e.ts.astimezone(zone).date()

    starts: dict[str, list[Ev]] = defaultdict(list)
    for e in sorted(ref.events, key=lambda e: (e.ts, e.event_id)):
        if matches(e.event, q.start_event):
            starts[ref.person(e)].append(e)
    # (value, cohort) -> members
    members: dict[tuple[str | None, date], set[str]] = defaultdict(set)
    for person, events in starts.items():
        if q.type == RetentionType.first_time:
            first = events[0]
            cohort = p_start(day_of(first), q.period, sunday)
            if day_of(first) <= scope.last_day and cohort >= cps[0]:
                members[(group(first, person), cohort)].add(person)
            continue
        seen: set[date] = set()
        for e in events:  # in time order: the first of each period decides
            cohort = p_start(day_of(e), q.period, sunday)
            if cps[0] <= day_of(e) <= scope.last_day and cohort not in seen:
                seen.add(cohort)
                members[(group(e, person), cohort)].add(person)
    returned = {
        person: {p_start(d, q.period, sunday) for d in ds if cps[0] <= d <= scope.last_day}
        for person, ds in ref.days(q.return_event).items()
    }
    out: dict[str | None, list[dict[str, Any]]] = {}
    for value in {v for v, _ in members} or {None}:
        cohorts = []
        for i, c in enumerate(cps):
            group = members.get((value, c), set())
            length = min(q.intervals, len(cps) - i)
            counts = [len(group)]
            for k in range(1, length):
                wanted = set(cps[i + k : i + length]) if q.cumulative else {cps[i + k]}
                counts.append(sum(1 for p in group if returned.get(p, set()) & wanted))
            cohorts.append({"start": c, "size": len(group), "counts": counts})
        out[value] = cohorts
    return out


def got_breakdown(
    store: EventStore, scope: Scope, q: RetentionQuery, person_values: pa.Table | None = None
) -> dict[str | None, list[dict[str, Any]]]:
    groups = retention_breakdown(store, scope, q, person_values=person_values)
    assert len({g.value for g in groups}) == len(groups), "one group per value"
    sizes = [sum(c.size for c in g.cohorts) for g in groups]
    assert sizes == sorted(sizes, reverse=True), "largest groups first"
    return {g.value: norm(g.cohorts) for g in groups}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Like the reference scenarios, each event sent from a platform and a channel (or none)."""
    tz = draw(st.sampled_from(ZONE_NAMES))
    base = draw(st.sampled_from(BASES))
    spec = st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(ANONS),
        st.one_of(st.none(), st.sampled_from(USERS)),
        st.sampled_from(USERS),
        st.integers(0, 40),
        st.integers(0, 23),
        st.sampled_from(PLATFORMS),
        st.sampled_from(CHANNELS),
    )
    origin = datetime(base.year, base.month, base.day, tzinfo=UTC)
    events = []
    for i, (kind, anon, user, id_user, day, hour, platform, channel) in enumerate(
        draw(st.lists(spec, min_size=1, max_size=34))
    ):
        # events may share an instant (the event id decides the first), but not two
        # identifies: which link came first must stay defined
        second = i if kind == "identify" else draw(st.sampled_from([0, i]))
        ts = origin + timedelta(days=day, hours=hour, seconds=second)
        who = id_user if kind == "identify" else user
        event_id = str(uuid.uuid5(ID_NAMESPACE, f"bd-{i}"))
        events.append(Ev(event_id, kind, ts, anon, who, platform, channel))
    cut = draw(st.integers(0, len(events)))
    first = base + timedelta(days=draw(st.integers(-5, 40)))
    last = first + timedelta(days=draw(st.integers(0, 45)))
    return Scenario(tz, base, [events[:cut], events[cut:]], first, last, draw(st.booleans()))


@BOUNDED
@given(
    sc=scenarios(),
    kind=st.sampled_from(list(RetentionType)),
    cumulative=st.booleans(),
    intervals=st.integers(1, 6),
    start_event=st.sampled_from(EVENTS),
    return_event=st.sampled_from(EVENTS),
    breakdown=st.sampled_from(["platform", "properties.channel"]),
)
def test_breakdown_matches_reference(
    make_store: StoreFactory,  # noqa: F811
    sc: Scenario,
    kind: RetentionType,
    cumulative: bool,
    intervals: int,
    start_event: str,
    return_event: str,
    breakdown: str,
) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for period in Period:
            q = RetentionQuery(
                period, intervals, kind, start_event, return_event, cumulative, breakdown
            )
            want = ref_breakdown(ref, sc.scope(), q, breakdown)
            assert got_breakdown(store, sc.scope(), q) == norm(want), q


def test_hand_built_platform_breakdown(make_store: StoreFactory) -> None:  # noqa: F811
    """Shanghai, daily cohorts over 1–3 March 2026 (UTC+8).

    - dev-a opens the app on Alipay at 09:00 and on WeChat at 10:00 on the 1st, and again on
      WeChat on the 2nd: first-time cohort 1 March, group alipay (the earlier event); in the
      recurring cohorts it is alipay on the 1st and wechat on the 2nd.
    - dev-b opens it on WeChat on the 1st, logs in as u-1 on the 3rd and opens it there
      without a platform: one person, wechat, back in interval 2.
    - dev-c opens it twice at the same instant, from WeChat (event id …02) and Alipay (…01):
      the smaller event id decides, so alipay.
    """
    zone = ZoneInfo("Asia/Shanghai")

    def at(day: int, hour: int) -> str:
        moment = datetime(2026, 3, day, hour, tzinfo=zone).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def on(e: Ev, platform: str | None, event_id: str | None = None) -> Ev:
        return Ev(event_id or e.event_id, e.event, e.ts, e.anon, e.user, platform)

    same = at(1, 12)
    events = [
        on(ev("app_open", at(1, 9), anon="dev-a"), "alipay"),
        on(ev("app_open", at(1, 10), anon="dev-a"), "wechat"),
        on(ev("app_open", at(2, 10), anon="dev-a"), "wechat"),
        on(ev("app_open", at(1, 11), anon="dev-b"), "wechat"),
        ev("identify", at(3, 8), anon="dev-b", user="u-1"),
        ev("app_open", at(3, 9), user="u-1"),
        on(ev("app_open", same, anon="dev-c"), "wechat", "00000000-0000-4000-8000-000000000002"),
        on(ev("app_open", same, anon="dev-c"), "alipay", "00000000-0000-4000-8000-000000000001"),
    ]
    scope = scope_of("Asia/Shanghai", date(2026, 3, 1), date(2026, 3, 3))
    first = RetentionQuery(Period.day, 3, RetentionType.first_time, "visit", "visit", False)
    by_platform = RetentionQuery(
        Period.day, 3, RetentionType.first_time, "visit", "visit", False, "platform"
    )
    recurring = RetentionQuery(
        Period.day, 3, RetentionType.recurring, "visit", "visit", False, "platform"
    )

    def cohorts(*rows: tuple[str, list[int]]) -> list[dict[str, Any]]:
        return [{"start": date.fromisoformat(s), "size": c[0], "counts": c} for s, c in rows]

    with make_store([events], "Asia/Shanghai") as store:
        assert got_breakdown(store, scope, by_platform) == {
            "alipay": cohorts(
                ("2026-03-01", [2, 1, 0]), ("2026-03-02", [0, 0]), ("2026-03-03", [0])
            ),
            "wechat": cohorts(
                ("2026-03-01", [1, 0, 1]), ("2026-03-02", [0, 0]), ("2026-03-03", [0])
            ),
        }
        assert got_breakdown(store, scope, recurring) == {
            "alipay": cohorts(
                ("2026-03-01", [2, 1, 0]), ("2026-03-02", [0, 0]), ("2026-03-03", [0])
            ),
            "wechat": cohorts(
                ("2026-03-01", [1, 0, 1]), ("2026-03-02", [1, 0]), ("2026-03-03", [0])
            ),
            None: cohorts(("2026-03-01", [0, 0, 0]), ("2026-03-02", [0, 0]), ("2026-03-03", [1])),
        }
        # the groups add up to the retention without a breakdown
        whole = norm(retention(store, scope, first))
        assert [c["size"] for c in whole] == [3, 0, 0]
        assert [c["counts"] for c in whole] == [[3, 1, 1], [0, 0], [0]]
