"""Lifecycle labels against a plain-Python reference written from the playbook definition.

The reference (below) reads the stored events as persons doing events on app-local days (the
analytics reference's `Ref`) and applies docs/lifecycle.md's rules one person at a time, with
dates and loops; the code under test does it in SQL plus NumPy. Hypothesis draws the events and
the rules; hand-built cases pin the new-user edge (day 7 vs day 8), a return at local midnight
in Asia/Shanghai, depth signals moving a user, and an imported creation time.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st

from liucun.lifecycle.labels import labels_as_of
from liucun.playbook.churn import ChurnPreset, ChurnRules, DepthSignal, EventCondition, Recency
from tests.reference_stores import APP
from tests.test_analytics_reference import (
    BOUNDED,
    Ref,
    Scenario,
    StoreFactory,
    ev,
    make_store,
    scenarios,
)

__all__ = ["make_store"]  # the store fixture, once per engine

PAGE = "pages/home"  # the page every reference page_view is on


def rules_of(
    silent: int,
    churned: int,
    signals: list[DepthSignal] | None = None,
    activity: str | None = None,
    new_silent: int = 3,
    new_churned: int = 7,
    new_days: int = 7,
    resurrected_days: int = 7,
) -> ChurnRules:
    preset = ChurnPreset(
        zh="测试",
        en="test",
        activity_event=activity,
        new_users=Recency(silent_after_days=new_silent, churned_after_days=new_churned),
        established=Recency(silent_after_days=silent, churned_after_days=churned),
        depth_signals=signals or [],
    )
    return ChurnRules(
        industry="test",
        new_user_days=new_days,
        resurrected_days=resurrected_days,
        presets={"test": preset},
    )


# --------------------------------------------------------------------------- reference


def _holds(ref: Ref, person: str, cond: EventCondition, as_of: date) -> bool:
    n = 0
    for p, day, name in ref.rows:
        if p != person or name != cond.event or day > as_of:
            continue
        if cond.page is not None and not (name == "page_view" and cond.page == PAGE):
            continue
        if cond.within_days is not None and (as_of - day).days >= cond.within_days:
            continue
        n += 1
    if cond.at_least is not None and n < cond.at_least:
        return False
    return not (cond.at_most is not None and n > cond.at_most)


def ref_labels(
    ref: Ref, rules: ChurnRules, as_of: date, created: dict[str, date] | None = None
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """person → (label, fired signals) as of `as_of`, straight from the definition."""
    preset = rules.preset
    out = {}
    persons = sorted({p for p, day, _ in ref.rows if day <= as_of})
    for person in persons:
        days = [day for p, day, _ in ref.rows if p == person and day <= as_of]
        first = min(days)
        if created and person in created and created[person] <= as_of:
            first = created[person]
        active = sorted(
            {
                day
                for p, day, name in ref.rows
                if p == person
                and day <= as_of
                and (preset.activity_event is None or name == preset.activity_event)
            }
        )
        last = active[-1] if active else first

        def is_new_type(since: date, first: date = first) -> bool:
            return (since - first).days < rules.new_user_days

        thresholds = preset.new_users if is_new_type(last) else preset.established
        since_active = (as_of - last).days
        if since_active < thresholds.silent_after_days:
            stage = 0
        elif since_active < thresholds.churned_after_days:
            stage = 1
        else:
            stage = 2
        fired = []
        for signal in preset.depth_signals:
            if signal.applies_to == "new" and not is_new_type(last):
                continue
            if signal.applies_to == "established" and is_new_type(last):
                continue
            if all(_holds(ref, person, c, as_of) for c in signal.when):
                stage += signal.shift
                fired.append(signal.name)
        stage = min(2, max(0, stage))
        if stage == 2:
            label = "churned"
        elif stage == 1:
            label = "silent"
        elif (as_of - first).days < rules.new_user_days:
            label = "new"
        else:
            label = "active"
            for before, back in itertools.pairwise(active):
                then = preset.new_users if is_new_type(before) else preset.established
                gap = (back - before).days - 1
                if (as_of - back).days < rules.resurrected_days and gap >= (
                    then.churned_after_days
                ):
                    label = "resurrected"
        out[person] = (label, tuple(fired))
    return out


def got_labels(store: Any, sc_tz: str, rules: ChurnRules, as_of: date) -> dict[str, Any]:
    result = labels_as_of(store, APP, sc_tz, rules, as_of)
    return {
        p: (label, sig)
        for p, label, sig in zip(result.persons, result.labels, result.signals, strict=True)
    }


# --------------------------------------------------------------------------- hypothesis

CONDITIONS = [
    EventCondition(event="order_paid", at_least=1),
    EventCondition(event="order_paid", within_days=5, at_most=0),
    EventCondition(event="share", within_days=10, at_least=1),
    EventCondition(event="page_view", page=PAGE, within_days=3, at_least=2),
    EventCondition(event="app_open", within_days=7, at_least=1, at_most=3),
]


@st.composite
def churn_rules(draw: st.DrawFn) -> ChurnRules:
    silent = draw(st.integers(1, 12))
    new_silent = draw(st.integers(1, 6))
    signals = []
    for i in range(draw(st.integers(0, 3))):
        conds = draw(st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=2))
        signals.append(
            DepthSignal(
                name=f"s{i}",
                zh="信号",
                en="signal",
                when=conds,
                shift=draw(st.sampled_from([-1, 1])),
                applies_to=draw(st.sampled_from(["all", "new", "established"])),
            )
        )
    return rules_of(
        silent,
        silent + draw(st.integers(1, 15)),
        signals,
        activity=draw(st.sampled_from([None, "app_open", "order_paid", "share"])),
        new_silent=new_silent,
        new_churned=new_silent + draw(st.integers(1, 8)),
        new_days=draw(st.integers(1, 9)),
        resurrected_days=draw(st.integers(1, 9)),
    )


@BOUNDED
@given(sc=scenarios(), rules=churn_rules(), offsets=st.lists(st.integers(-3, 80), max_size=3))
def test_labels_match_reference(
    make_store: StoreFactory, sc: Scenario, rules: ChurnRules, offsets: list[int]
) -> None:
    note(sc.describe())
    ref = Ref(sc.events, sc.tz)
    with make_store(sc.batches, sc.tz) as store:
        for offset in [*offsets, 69]:
            as_of = sc.base + timedelta(days=offset)
            assert got_labels(store, sc.tz, rules, as_of) == ref_labels(ref, rules, as_of), as_of


# --------------------------------------------------------------------------- by hand

SHANGHAI = "Asia/Shanghai"


def test_new_user_edge_day_7_and_day_8(make_store: StoreFactory) -> None:
    # first seen 2026-03-01 at 00:30 Shanghai (16:30 UTC the day before), back daily: new on
    # day 7 (03-07), active on day 8 (03-08)
    events = [ev("app_open", "2026-02-28T16:30:00Z", anon="a")]
    events += [ev("app_open", f"2026-03-{d:02d}T02:00:00Z", anon="a") for d in range(2, 9)]
    rules = rules_of(10, 20)
    with make_store([events], SHANGHAI) as store:
        assert got_labels(store, SHANGHAI, rules, date(2026, 3, 7))["a"][0] == "new"
        assert got_labels(store, SHANGHAI, rules, date(2026, 3, 8))["a"][0] == "active"
    # for an app in UTC the first day is 02-28, so 03-07 is already day 8
    with make_store([events], "UTC") as store:
        assert got_labels(store, "UTC", rules, date(2026, 3, 7))["a"][0] == "active"


def test_one_week_user_stays_churned_after_day_8(make_store: StoreFactory) -> None:
    events = [ev("app_open", "2026-03-01T02:00:00Z", anon="a")]
    rules = rules_of(10, 20, new_silent=3, new_churned=6)
    with make_store([events], SHANGHAI) as store:
        by_day = {
            d: got_labels(store, SHANGHAI, rules, date(2026, 3, d))["a"][0] for d in range(1, 12)
        }
    assert by_day == {
        1: "new",
        2: "new",
        3: "new",
        4: "silent",
        5: "silent",
        6: "silent",
        7: "churned",
        8: "churned",
        9: "churned",
        10: "churned",
        11: "churned",
    }


def test_return_after_local_midnight_resurrects(make_store: StoreFactory) -> None:
    # active 03-01, then nothing until 03-31 00:05 Shanghai (03-30 16:05 UTC): a 29-day gap
    # with churned after 20 → resurrected from 03-31 for 7 days, active on the 8th
    events = [ev("app_open", f"2026-03-{d:02d}T02:00:00Z", anon="a") for d in range(1, 10)]
    events.append(ev("app_open", "2026-03-30T16:05:00Z", anon="a"))
    rules = rules_of(10, 20)
    with make_store([events], SHANGHAI) as store:
        assert got_labels(store, SHANGHAI, rules, date(2026, 3, 30))["a"][0] == "churned"
        assert got_labels(store, SHANGHAI, rules, date(2026, 3, 31))["a"][0] == "resurrected"
        assert got_labels(store, SHANGHAI, rules, date(2026, 4, 6))["a"][0] == "resurrected"
        assert got_labels(store, SHANGHAI, rules, date(2026, 4, 7))["a"][0] == "active"


def test_depth_signals_move_buyers_and_browsers(make_store: StoreFactory) -> None:
    # the seeds' e-commerce case: a buyer who still browses but stopped buying is silent;
    # a browser who never bought stays active
    stopped = DepthSignal(
        name="stopped_buying",
        zh="停止购买",
        en="stopped buying",
        shift=1,
        when=[
            EventCondition(event="order_paid", at_least=1),
            EventCondition(event="order_paid", within_days=30, at_most=0),
        ],
    )
    events = [ev("order_paid", "2026-03-01T02:00:00Z", anon="buyer")]
    for d in range(1, 29):
        events.append(ev("app_open", f"2026-04-{d:02d}T02:00:00Z", anon="buyer"))
        events.append(ev("app_open", f"2026-04-{d:02d}T03:00:00Z", anon="browser"))
    rules = rules_of(15, 30, [stopped])
    with make_store([events], SHANGHAI) as store:
        got = got_labels(store, SHANGHAI, rules, date(2026, 4, 28))
    assert got == {"buyer": ("silent", ("stopped_buying",)), "browser": ("active", ())}


def test_identified_devices_are_one_person(make_store: StoreFactory) -> None:
    events = [
        ev("app_open", "2026-03-01T02:00:00Z", anon="d1"),
        ev("identify", "2026-03-01T02:00:01Z", anon="d1", user="u1"),
        ev("app_open", "2026-03-20T02:00:00Z", anon="d2", user="u1"),
    ]
    with make_store([events], SHANGHAI) as store:
        back = got_labels(store, SHANGHAI, rules_of(10, 30), date(2026, 3, 21))
        later = got_labels(store, SHANGHAI, rules_of(10, 30), date(2026, 3, 27))
    # one person, u1: back after 18 days away, churned as a new-type user after 7
    assert back == {"u1": ("resurrected", ())}
    assert later == {"u1": ("active", ())}
