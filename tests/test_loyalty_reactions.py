"""The earning reactions on events, on both state stores: points by the rules (member day,
level multiplier, fen arithmetic), once per event however often it is delivered, trusted-only
rules, caps and budgets against a plain-Python reference, the n-th event of the month,
refunds, paid orders, growth, and what is filtered before any transaction.

Asia/Shanghai is UTC+8; member day is the 8th (app-local).
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liucun.loyalty.ledger import journal_balance
from liucun.loyalty.members import find_member
from liucun.loyalty.programme import Programme, programme_of
from liucun.loyalty.reactions import react
from liucun.playbook.loyalty import LoyaltyRules
from liucun.state.apps import create_app as create_tenant
from liucun.state.apps import find_app
from liucun.state.tables import loyalty_members, points_journal

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 31, tzinfo=UTC)


def bj(y: int, m: int, d: int, h: int = 12, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=TZ).astimezone(UTC)


def programme(engine: sa.Engine, **rules: Any) -> Programme:
    creds = create_tenant(engine, f"shop {uuid.uuid4().hex[:8]}", "Asia/Shanghai")
    prog = programme_of(engine, find_app(engine, creds.app_id))
    # no new-user pack: the rewards checked here are the activity's own
    return replace(
        prog, rules=LoyaltyRules.model_validate({"new_user_pack": {"enabled": False}, **rules})
    )


def ev(
    event: str,
    user: str | None,
    at: datetime,
    amount: float | None = None,
    order_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event": event,
        "user_id": user,
        "ts": at,
        "amount": amount,
        "properties": {"order_id": order_id} if order_id else {},
    }


def balance(engine: sa.Engine, prog: Programme, user: str) -> int:
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user)
        if member is None:
            return 0
        assert journal_balance(conn, prog.app_id, user) == member.balance
        return member.balance


def set_level(engine: sa.Engine, prog: Programme, user: str, level: str) -> None:
    m = loyalty_members.c
    with engine.begin() as conn:
        conn.execute(
            loyalty_members.update()
            .where(m.app_id == prog.app_id, m.user_id == user)
            .values(level=level)
        )


# --------------------------------------------------------------------------- order points


def test_member_day_doubles_order_points(engine: sa.Engine) -> None:
    prog = programme(engine)  # order_points: 1 a yuan, server only, member day, level
    on = react(
        engine, prog, [ev("order_paid", "u1", bj(2026, 11, 8, 0, 0), 100.0, "o1")], True, NOW
    )
    before = react(
        engine, prog, [ev("order_paid", "u2", bj(2026, 11, 7, 23, 59, 59), 100.0, "o2")], True, NOW
    )
    assert on.awards == {"order_points": 200} and before.awards == {"order_points": 100}
    assert balance(engine, prog, "u1") == 200 and balance(engine, prog, "u2") == 100
    j = points_journal.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(j.rule, j.order_id, j.amount_fen, j.playbook_revision, j.operation_key).where(
                j.app_id == prog.app_id, j.user_id == "u1"
            )
        ).one()
    assert (row.rule, row.order_id, row.amount_fen, row.playbook_revision) == (
        "order_points",
        "o1",
        10_000,
        prog.revision,
    )
    assert row.operation_key.startswith("event:") and row.operation_key.endswith(":order_points")


def test_points_are_computed_in_fen_and_rounded_down(engine: sa.Engine) -> None:
    prog = programme(engine)
    react(engine, prog, [ev("order_paid", "u1", bj(2026, 11, 3), 12.34, "o1")], True, NOW)
    assert balance(engine, prog, "u1") == 12
    # 0.29 yuan is 29 fen (float 0.29 × 100 is 28.999…): at 100 a yuan, 29 points
    hundred = programme(
        engine,
        earning=[
            {
                "name": "o",
                "zh": "o",
                "en": "o",
                "event": "order_paid",
                "per_yuan": 100,
                "server_only": True,
            }
        ],
    )
    react(engine, hundred, [ev("order_paid", "u1", bj(2026, 11, 3), 0.29, "o1")], True, NOW)
    assert balance(engine, hundred, "u1") == 29
    # gold: ×1.5, on member day ×2 as well: ⌊100 × 2 × 1.5⌋ and ⌊12 × 1.5⌋
    react(engine, prog, [ev("order_paid", "g", bj(2026, 11, 3), 1.0, "x")], True, NOW)
    set_level(engine, prog, "g", "gold")
    react(
        engine,
        prog,
        [
            ev("order_paid", "g", bj(2026, 11, 8), 100.0, "g1"),
            ev("order_paid", "g", bj(2026, 11, 9), 12.34, "g2"),
        ],
        True,
        NOW,
    )
    assert balance(engine, prog, "g") == 1 + 300 + 18


def test_an_order_delivered_ten_times_awards_once(engine: sa.Engine) -> None:
    prog = programme(engine)
    order = ev("order_paid", "u1", bj(2026, 11, 3), 100.0, "o1")
    reports = [react(engine, prog, [order], True, NOW) for _ in range(10)]
    assert [r.awards.get("order_points", 0) for r in reports] == [100] + [0] * 9
    assert all(r.skipped == {"duplicate": 1} for r in reports[1:])
    assert balance(engine, prog, "u1") == 100
    other = ev("order_paid", "u2", bj(2026, 11, 3), 100.0, "o2")
    with ThreadPoolExecutor(max_workers=10) as pool:
        concurrent = list(pool.map(lambda _: react(engine, prog, [other], True, NOW), range(10)))
    assert sum(r.awards.get("order_points", 0) for r in concurrent) == 100
    assert balance(engine, prog, "u2") == 100
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, "u2")
    assert member is not None and member.paid_orders == 1


def test_untrusted_orders_and_refunds_award_nothing(engine: sa.Engine) -> None:
    prog = programme(engine)
    report = react(
        engine,
        prog,
        [
            ev("order_paid", "u1", bj(2026, 11, 8), 100.0, "o1"),
            ev("order_refunded", "u1", bj(2026, 11, 8), 100.0, "o1"),
        ],
        False,
        NOW,
    )
    assert report.awards == {} and report.reacted == 0
    assert report.skipped["untrusted"] == 3  # the order rule, the order count, the refund
    with engine.connect() as conn:
        assert find_member(conn, prog.app_id, "u1") is None  # no transaction was opened
    # the same event later from the backend does earn (it was never counted)
    order = ev("order_paid", "u1", bj(2026, 11, 9), 50.0, "o2")
    react(engine, prog, [order], False, NOW)
    assert react(engine, prog, [order], True, NOW).awards == {"order_points": 50}


def test_events_nothing_reacts_to_open_no_transaction(engine: sa.Engine) -> None:
    prog = programme(engine, tasks=[])
    report = react(
        engine,
        prog,
        [
            ev("page_view", "u1", bj(2026, 11, 3)),
            ev("share", None, bj(2026, 11, 3)),
            ev("share", " spaced ", bj(2026, 11, 3)),
        ],
        False,
        NOW,
    )
    assert (report.events, report.reacted, report.users) == (3, 0, 0)
    assert report.skipped == {"no_match": 1, "no_user": 1, "bad_user_id": 1}
    with engine.connect() as conn:
        assert find_member(conn, prog.app_id, "u1") is None
    shares = react(engine, prog, [ev("share", "u1", bj(2026, 11, 3))], False, NOW)
    assert shares.awards == {"share_points": 5} and shares.users == 1


# --------------------------------------------------------------------------- caps and budgets

CAP_RULES: dict[str, Any] = {
    "earning": [
        {
            "name": "share_points",
            "zh": "分享",
            "en": "Share",
            "event": "share",
            "points": 5,
            "daily_cap": 12,
            "monthly_cap": 40,
        },
        {
            "name": "buy",
            "zh": "购买",
            "en": "Buy",
            "event": "order_paid",
            "per_yuan": 1.5,
            "server_only": True,
            "member_day": True,
            "daily_cap": 150,
            "monthly_budget": 400,
        },
    ],
    "tasks": [],
    "ladder": {"enabled": False},
}
START = date(2026, 11, 26)  # the days run across 1 December and its member day, the 8th


def reference_awards(
    batches: list[list[dict[str, Any]]],
) -> tuple[Counter[str], Counter[str]]:
    """Points by user and by rule from the definitions, in the order react handles events:
    batch by batch, users in sorted order, a user's events by time."""
    counted: set[tuple[str, str]] = set()
    per_day: Counter[tuple[str, str, date]] = Counter()
    per_month: Counter[tuple[str, str, str]] = Counter()
    budget: Counter[tuple[str, str]] = Counter()
    users: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for batch in batches:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in batch:
            grouped[e["user_id"]].append(e)
        for user in sorted(grouped):
            for e in sorted(grouped[user], key=lambda e: (e["ts"], e["event_id"])):
                rule = "share_points" if e["event"] == "share" else "buy"
                if (e["event_id"], rule) in counted:
                    continue
                counted.add((e["event_id"], rule))
                local = e["ts"].astimezone(TZ).date()
                month = local.strftime("%Y-%m")
                if rule == "share_points":
                    points = min(
                        5, 12 - per_day[user, rule, local], 40 - per_month[user, rule, month]
                    )
                else:
                    fen = round(e["amount"] * 100)
                    points = fen * 3 // 200 * (2 if local.day == 8 else 1)
                    points = min(points, 150 - per_day[user, rule, local])
                    points = min(points, 400 - budget[rule, month]) if points > 0 else 0
                if points <= 0:
                    continue
                per_day[user, rule, local] += points
                per_month[user, rule, month] += points
                budget[rule, month] += points
                users[user] += points
                rules[rule] += points
    return users, rules


@st.composite
def event_batches(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    n = draw(st.integers(min_value=1, max_value=30))
    events: list[dict[str, Any]] = []
    for i in range(n):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(events)))  # delivered again
            continue
        kind = draw(st.sampled_from(["share", "order_paid"]))
        day = START + timedelta(days=draw(st.integers(0, 13)))
        # midnight, the last minute, or any time of the local day
        minute = draw(st.sampled_from([0, 1439, draw(st.integers(0, 1439))]))
        at = (
            datetime(day.year, day.month, day.day, tzinfo=TZ) + timedelta(minutes=minute)
        ).astimezone(UTC)
        amount = draw(st.integers(1, 20_000)) / 100 if kind == "order_paid" else None
        user = draw(st.sampled_from(["a", "b", "c"]))
        events.append(ev(kind, user, at, amount, f"o{i}", f"e{i:03d}"))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=3)))
    bounds = [0, *cuts, len(events)]
    return [events[lo:hi] for lo, hi in itertools.pairwise(bounds) if hi > lo]


def test_caps_and_budget_match_the_reference(engine: sa.Engine) -> None:
    @given(batches=event_batches())
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(batches: list[list[dict[str, Any]]]) -> None:
        prog = programme(engine, **CAP_RULES)
        awarded: Counter[str] = Counter()
        for batch in batches:
            awarded.update(react(engine, prog, batch, True, NOW).awards)
        users, rules = reference_awards(batches)
        assert +awarded == +rules
        assert {u: balance(engine, prog, u) for u in "abc"} == {u: users[u] for u in "abc"}

    check()


def test_a_budget_holds_across_concurrent_members(engine: sa.Engine) -> None:
    """40 members at once, each with an order and a share in opposite orders (so PostgreSQL
    meets deadlocks on the two budget rows and runs the victims again)."""
    budgeted = [
        {**CAP_RULES["earning"][0], "daily_cap": None, "monthly_cap": None, "monthly_budget": 33},
        {**CAP_RULES["earning"][1], "daily_cap": None, "monthly_budget": 250, "member_day": False},
    ]
    prog = programme(engine, **{**CAP_RULES, "earning": budgeted})

    def member(i: int) -> Any:
        order = ev("order_paid", f"m{i:02d}", bj(2026, 11, 3, 10, 0 if i % 2 else 5), 7.0, f"o{i}")
        share = ev("share", f"m{i:02d}", bj(2026, 11, 3, 10, 5 if i % 2 else 0))
        return react(engine, prog, [order, share], True, NOW)

    with ThreadPoolExecutor(max_workers=40) as pool:
        reports = list(pool.map(member, range(40)))
    awards: Counter[str] = Counter()
    for r in reports:
        awards.update(r.awards)
    # 7 yuan × 1.5 = 10 points an order: 25 fit in 250; shares of 5: 6 fit in 33, then 3
    assert awards == {"buy": 250, "share_points": 33}
    assert sum(balance(engine, prog, f"m{i:02d}") for i in range(40)) == 283
    assert sum(r.skipped["budget_spent"] for r in reports) == 15 + 33


# --------------------------------------------------------------------------- n-th in month


def test_only_the_nth_event_of_the_month_earns(engine: sa.Engine) -> None:
    third = {
        "name": "third_order",
        "zh": "当月第 3 单",
        "en": "3rd order of the month",
        "event": "order_paid",
        "points": 50,
        "nth_in_month": 3,
        "server_only": True,
    }
    prog = programme(engine, earning=[third])
    orders = [
        ev("order_paid", "u1", bj(2026, 11, 1), 10.0, "a"),
        ev("order_paid", "u1", bj(2026, 11, 5), 10.0, "b"),
        ev("order_paid", "u1", bj(2026, 11, 30, 23, 59), 10.0, "c"),  # the 3rd: 50
        ev("order_paid", "u1", bj(2026, 12, 1, 0, 0), 10.0, "d"),  # December's 1st
        ev("order_paid", "u1", bj(2026, 12, 2), 10.0, "e"),
    ]
    first = react(engine, prog, orders, True, NOW)
    assert first.awards == {"third_order": 50} and first.skipped["not_nth"] == 4
    # a replay of the 3rd counts nothing; December's 3rd earns
    again = react(
        engine,
        prog,
        [orders[2], ev("order_paid", "u1", bj(2026, 12, 3, 0, 0), 1.0, "f")],
        True,
        NOW,
    )
    assert again.awards == {"third_order": 50} and again.skipped["duplicate"] == 1
    react(engine, prog, [ev("order_paid", "u1", bj(2026, 12, 4), 1.0, "g")], True, NOW)
    assert balance(engine, prog, "u1") == 100


# --------------------------------------------------------------------------- refunds, orders


def test_refunds_reverse_in_proportion_and_never_twice(engine: sa.Engine) -> None:
    prog = programme(engine)
    react(engine, prog, [ev("order_paid", "u1", bj(2026, 11, 3), 100.0, "o1")], True, NOW)
    first = ev("order_refunded", "u1", bj(2026, 11, 4), 30.0, "o1")
    assert react(engine, prog, [first], True, NOW).reversed_points == 30
    assert react(engine, prog, [first], True, NOW).reversed_points == 0  # delivered again
    forged = react(
        engine, prog, [ev("order_refunded", "u1", bj(2026, 11, 4), 40.0, "o1")], False, NOW
    )
    assert forged.reversed_points == 0 and forged.skipped["untrusted"] == 1
    rest = ev("order_refunded", "u1", bj(2026, 11, 5), 70.0, "o1")
    more = ev("order_refunded", "u1", bj(2026, 11, 6), 10.0, "o1")  # past the order
    assert react(engine, prog, [rest, more], True, NOW).reversed_points == 70
    assert balance(engine, prog, "u1") == 0
    # 33.33 yuan earned 33; refunds of 10.00 and then the rest reverse ⌊33 × R / 3333⌋ in all
    react(engine, prog, [ev("order_paid", "u2", bj(2026, 11, 3), 33.33, "o2")], True, NOW)
    part = react(engine, prog, [ev("order_refunded", "u2", bj(2026, 11, 4), 10.0, "o2")], True, NOW)
    assert part.reversed_points == 33 * 1000 // 3333
    whole = react(
        engine, prog, [ev("order_refunded", "u2", bj(2026, 11, 4), 23.33, "o2")], True, NOW
    )
    assert part.reversed_points + whole.reversed_points == 33
    # a refund without an amount takes back the whole order
    react(engine, prog, [ev("order_paid", "u3", bj(2026, 11, 3), 20.0, "o3")], True, NOW)
    full = react(engine, prog, [ev("order_refunded", "u3", bj(2026, 11, 4), None, "o3")], True, NOW)
    assert full.reversed_points == 20 and balance(engine, prog, "u3") == 0


def test_paid_orders_are_counted_once_per_order(engine: sa.Engine) -> None:
    prog = programme(engine)
    report = react(
        engine,
        prog,
        [
            ev("order_paid", "u1", bj(2026, 11, 3), 10.0, "o1"),
            ev("order_paid", "u1", bj(2026, 11, 3, 13), 10.0, "o1"),  # the order, sent again
            ev("order_paid", "u1", bj(2026, 11, 4), 10.0, "o2"),
        ],
        True,
        NOW,
    )
    react(engine, prog, [ev("order_paid", "u1", bj(2026, 11, 5), 10.0, "o3")], False, NOW)
    assert report.paid_orders == 2
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, "u1")
    assert member is not None and member.paid_orders == 2


def test_growth_from_orders_visits_and_shares(engine: sa.Engine) -> None:
    """Growth by levels.add_growth: 1 a yuan, 1 an active day, 2 a share (the defaults)."""
    prog = programme(engine, tasks=[])
    batch = [
        ev("order_paid", "u1", bj(2026, 11, 3), 100.0, "o1"),
        ev("app_open", "u1", bj(2026, 11, 3, 9)),
        ev("app_open", "u1", bj(2026, 11, 3, 10)),  # the same day
        ev("share", "u1", bj(2026, 11, 3, 11)),
    ]
    react(engine, prog, batch, True, bj(2026, 11, 3, 12))
    react(engine, prog, batch, True, bj(2026, 11, 3, 12))  # delivered again
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, "u1")
    assert member is not None and member.growth == 100 + 1 + 2
