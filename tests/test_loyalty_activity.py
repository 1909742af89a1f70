"""Member day, check-in (streaks, monthly counts, rewards, badges, make-up cards), the monthly
ladder and daily tasks, on both state stores, checked against plain-Python definitions; and
their HTTP routes.

Asia/Shanghai is UTC+8: 23:59 Beijing is 15:59Z of the same date, 00:00 Beijing is 16:00Z of
the day before.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from liucun.loyalty.checkin import check_in, checkin_counts, checkin_status, make_up
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.ladder import ladder_progress
from liucun.loyalty.ledger import journal_balance
from liucun.loyalty.member_day import is_member_day, member_day_info, next_member_day
from liucun.loyalty.members import find_member
from liucun.loyalty.points import award_points
from liucun.loyalty.programme import Programme, programme_of
from liucun.loyalty.reactions import react
from liucun.loyalty.tasks import tasks_today
from liucun.playbook.loyalty import LoyaltyRules
from liucun.state.apps import create_app as create_tenant
from liucun.state.apps import find_app
from liucun.state.tables import checkins, loyalty_rewards, points_journal
from tests.loyalty_helpers import loyalty_server

TZ = ZoneInfo("Asia/Shanghai")


def bj(y: int, m: int, d: int, h: int = 12, mi: int = 0, s: int = 0) -> datetime:
    """A Beijing wall-clock time as an aware UTC time."""
    return datetime(y, m, d, h, mi, s, tzinfo=TZ).astimezone(UTC)


def programme(engine: sa.Engine, **rules: Any) -> Programme:
    """A new app under the default playbook, its loyalty rules replaced by `rules` (the rest
    are the defaults, but for the new-user pack, which is off)."""
    creds = create_tenant(engine, f"shop {uuid.uuid4().hex[:8]}", "Asia/Shanghai")
    prog = programme_of(engine, find_app(engine, creds.app_id))
    # no new-user pack: the rewards checked here are the activity's own
    return replace(
        prog, rules=LoyaltyRules.model_validate({"new_user_pack": {"enabled": False}, **rules})
    )


def points_reward(points: int) -> dict[str, Any]:
    return {"points": points}


# checking in: points a day, 30 points at 3 check-ins a month, 20 points at 3 in a row, a badge
# at 5 in a row (no coupons: those are tested on their own below)
CHECKIN_RULES: dict[str, Any] = {
    "checkin": {
        "points": 2,
        "monthly": [{"count": 3, "reward": points_reward(30)}],
        "streaks": [{"days": 3, "reward": points_reward(20)}],
        "badges": [{"name": "five", "zh": "连续 5 天", "en": "Five in a row", "streak": 5}],
    }
}


def rewards_of(engine: sa.Engine, prog: Programme, user: str) -> list[Any]:
    r = loyalty_rewards.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(loyalty_rewards)
                .where(r.app_id == prog.app_id, r.user_id == user)
                .order_by(r.reward_key)
            )
        )


def balance(engine: sa.Engine, prog: Programme, user: str) -> int:
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user)
        assert member is not None
        assert journal_balance(conn, prog.app_id, user) == member.balance
        return member.balance


# --------------------------------------------------------------------------- member day


def test_member_day_is_the_app_local_day(engine: sa.Engine) -> None:
    prog = programme(engine)  # day 8, ×2
    before = bj(2026, 11, 7, 23, 59, 59)
    start = bj(2026, 11, 8, 0, 0, 0)
    assert before == datetime(2026, 11, 7, 15, 59, 59, tzinfo=UTC)
    assert start == datetime(2026, 11, 7, 16, 0, 0, tzinfo=UTC)
    assert not is_member_day(prog, before)
    assert is_member_day(prog, start)
    assert is_member_day(prog, bj(2026, 11, 8, 23, 59, 59))
    assert not is_member_day(prog, bj(2026, 11, 9, 0, 0, 0))
    info = member_day_info(prog, before)
    assert info["today"] is False and info["next_day"] == "2026-11-08"
    assert info["days_until"] == 1 and info["points_multiplier"] == 2
    info = member_day_info(prog, start)
    assert info["today"] is True and info["next_day"] == "2026-11-08"
    assert member_day_info(prog, bj(2026, 11, 9))["next_day"] == "2026-12-08"
    off = replace(prog, rules=LoyaltyRules.model_validate({"member_day": {"enabled": False}}))
    assert not is_member_day(off, start)
    assert member_day_info(off, start)["next_day"] is None


def test_a_day_the_month_lacks_is_skipped(engine: sa.Engine) -> None:
    prog = programme(engine, member_day={"days": [31]})
    assert next_member_day(prog, date(2026, 4, 1)) == date(2026, 5, 31)
    assert next_member_day(prog, date(2026, 2, 1)) == date(2026, 3, 31)
    # no 30 April is a member day; 31 May is
    april = [date(2026, 4, d) for d in range(1, 31)]
    assert not any(is_member_day(prog, bj(d.year, d.month, d.day)) for d in april)
    assert is_member_day(prog, bj(2026, 5, 31))
    leap = programme(engine, member_day={"days": [29]})
    assert next_member_day(leap, date(2027, 2, 1)) == date(2027, 3, 29)
    assert next_member_day(leap, date(2028, 2, 1)) == date(2028, 2, 29)


# --------------------------------------------------------------------------- check-in


def test_concurrent_check_ins_make_one(engine: sa.Engine) -> None:
    prog = programme(engine, **CHECKIN_RULES)
    now = bj(2026, 11, 20, 9)
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: check_in(engine, prog, "u1", now), range(100)))
    assert sum(not r["already_checked_in"] for r in results) == 1
    assert {r["day"] for r in results} == {"2026-11-20"}
    assert {r["streak"] for r in results} == {1}
    c = checkins.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.day).where(c.app_id == prog.app_id)).all()
        earns = conn.execute(
            sa.select(sa.func.count()).where(points_journal.c.app_id == prog.app_id)
        ).scalar_one()
    assert len(rows) == 1
    assert [r.reward_key for r in rewards_of(engine, prog, "u1")] == [
        "checkin_points:u1:2026-11-20"
    ]
    assert earns == 1 and balance(engine, prog, "u1") == 2


def test_a_check_in_belongs_to_its_local_day(engine: sa.Engine) -> None:
    prog = programme(engine, **CHECKIN_RULES)
    first = check_in(engine, prog, "u1", bj(2026, 11, 7, 23, 59))
    # two minutes later in UTC, but the next day in Beijing
    second = check_in(engine, prog, "u1", bj(2026, 11, 8, 0, 1))
    assert (first["day"], first["streak"]) == ("2026-11-07", 1)
    assert (second["day"], second["streak"], second["already_checked_in"]) == (
        "2026-11-08",
        2,
        False,
    )
    # the same local day, almost 24 hours later: one check-in
    again = check_in(engine, prog, "u1", bj(2026, 11, 8, 23, 59))
    assert again["already_checked_in"] is True
    assert {k: again[k] for k in ("day", "streak", "month_count", "rewards")} == {
        k: second[k] for k in ("day", "streak", "month_count", "rewards")
    }
    assert balance(engine, prog, "u1") == 4  # 2 points a check-in, twice


def reference_checkins(days: list[date]) -> tuple[list[tuple[int, int]], set[str]]:
    """Streak and month count of each check-in day (in order), and the reward keys the rules
    of CHECKIN_RULES give, from the definitions."""
    seen: set[date] = set()
    streaks: dict[date, int] = {}
    out: list[tuple[int, int]] = []
    keys: set[str] = set()
    for d in days:
        streak = streaks.get(d - timedelta(days=1), 0) + 1
        streaks[d] = streak
        seen.add(d)
        count = sum(1 for s in seen if (s.year, s.month) == (d.year, d.month))
        out.append((streak, count))
        keys.add(f"checkin_points:u1:{d}")
        if count >= 3:
            keys.add(f"checkin_month:u1:{d:%Y-%m}:3")
        if streak == 3:
            keys.add(f"checkin_streak:u1:{d - timedelta(days=2)}:3")
        if streak >= 5:
            keys.add("badge:u1:five")
    return out, keys


def test_streaks_and_monthly_counts_match_the_definition(engine: sa.Engine) -> None:
    prog = programme(engine, **CHECKIN_RULES)
    rng = random.Random(7)
    start = date(2026, 10, 20)
    days = [start + timedelta(days=i) for i in range(60) if rng.random() < 0.7]
    expected, keys = reference_checkins(days)
    for d, (streak, count) in zip(days, expected, strict=True):
        # any time of the local day, midnight and the last second included
        at = datetime(d.year, d.month, d.day, tzinfo=TZ) + timedelta(
            seconds=rng.choice([0, 86_399, rng.randrange(86_400)])
        )
        result = check_in(engine, prog, "u1", at.astimezone(UTC))
        assert (result["day"], result["streak"], result["month_count"]) == (
            d.isoformat(),
            streak,
            count,
        )
    assert {r.reward_key for r in rewards_of(engine, prog, "u1")} == keys
    points = {
        "checkin_points": 2,
        "checkin_month": 30,
        "checkin_streak": 20,
        "badge": 0,
    }
    assert balance(engine, prog, "u1") == sum(points[k.split(":")[0]] for k in keys)


def test_the_month_boundary_resets_the_monthly_count(engine: sa.Engine) -> None:
    prog = programme(engine, **CHECKIN_RULES)
    for day in (28, 29):
        check_in(engine, prog, "u1", bj(2026, 11, day))
    last = check_in(engine, prog, "u1", bj(2026, 11, 30, 23, 59, 59))
    first = check_in(engine, prog, "u1", bj(2026, 12, 1, 0, 0, 0))
    assert (last["month_count"], first["month_count"]) == (3, 1)
    assert (last["streak"], first["streak"]) == (3, 4)
    status = checkin_status(engine, prog, "u1", bj(2026, 12, 1, 8))
    assert status["month"] == "2026-12" and status["month_days"] == ["2026-12-01"]
    assert status["next_monthly"] == {
        "count": 3,
        "to_go": 2,
        "reward": {"points": 30, "coupon": None},
    }
    keys = [r.reward_key for r in rewards_of(engine, prog, "u1")]
    assert "checkin_month:u1:2026-11:3" in keys
    assert not any(k.startswith("checkin_month:u1:2026-12") for k in keys)


def test_the_30_day_badge(engine: sa.Engine) -> None:
    rules = {
        "checkin": {
            "streaks": [{"days": 7, "reward": points_reward(70)}],
            "monthly": [],
            # the defaults: 7 and 30 in a row
        }
    }
    prog = programme(engine, **rules)
    start = date(2026, 11, 10)
    badges: dict[int, list[str]] = {}
    for i in range(31):
        d = start + timedelta(days=i)
        result = check_in(engine, prog, "u1", bj(d.year, d.month, d.day, 8))
        assert result["streak"] == i + 1
        if result["badges"]:
            badges[i + 1] = result["badges"]
    assert badges == {7: ["streak_7"], 30: ["streak_30"]}
    status = checkin_status(engine, prog, "u1", bj(2026, 12, 10, 20))
    assert [b["earned"] for b in status["badges"]] == [True, True]
    assert (status["streak"], status["longest_streak"]) == (31, 31)
    # the 7-day reward once for the streak, not again at 14, 21 or 28
    assert balance(engine, prog, "u1") == 70


def test_status_current_streak_ends_today_or_yesterday(engine: sa.Engine) -> None:
    prog = programme(engine, **CHECKIN_RULES)
    for day in (1, 2, 3, 5, 6):
        check_in(engine, prog, "u1", bj(2026, 11, day))
    on_6 = checkin_status(engine, prog, "u1", bj(2026, 11, 6, 22))
    assert (on_6["checked_in_today"], on_6["streak"], on_6["longest_streak"]) == (True, 2, 3)
    on_7 = checkin_status(engine, prog, "u1", bj(2026, 11, 7, 0, 0))
    assert (on_7["checked_in_today"], on_7["streak"]) == (False, 2)
    on_8 = checkin_status(engine, prog, "u1", bj(2026, 11, 8, 0, 0))
    assert on_8["streak"] == 0 and on_8["month_count"] == 5
    assert on_8["next_streak"] == {"days": 3, "to_go": 3, "reward": {"points": 20, "coupon": None}}
    stranger = checkin_status(engine, prog, "nobody", bj(2026, 11, 8))
    assert (stranger["streak"], stranger["month_count"], stranger["longest_streak"]) == (0, 0, 0)
    assert checkin_counts(engine, prog, date(2026, 11, 5)) == {
        "day": "2026-11-05",
        "checkins": 1,
        "makeups": 0,
    }


def test_a_streak_coupon_is_issued(engine: sa.Engine) -> None:
    """The default 7-day reward is a coupon (needs coupons.issue_coupon)."""
    prog = programme(engine)
    for i in range(7):
        result = check_in(engine, prog, "u1", bj(2026, 11, 1 + i, 9))
    granted = [r for r in result["rewards"] if r["kind"] == "streak"]
    assert len(granted) == 1 and granted[0]["coupon"]["template"] == "streak_7"
    assert result["unavailable"] == []


# --------------------------------------------------------------------------- make-up cards

MAKEUP_RULES: dict[str, Any] = {
    "checkin": {
        "monthly": [],
        "streaks": [
            {"days": 2, "reward": points_reward(5)},
            {"days": 5, "reward": points_reward(50)},
        ],
        "badges": [{"name": "six", "zh": "连续 6 天", "en": "Six in a row", "streak": 6}],
        "makeup": {"enabled": True, "per_month": 2, "max_days_back": 3, "cost_points": 10},
    }
}


def refusal(call: Any) -> str:
    with pytest.raises(LoyaltyError) as caught:
        call()
    return caught.value.code


def test_make_up_refusals(engine: sa.Engine) -> None:
    off = programme(engine, **CHECKIN_RULES)
    now = bj(2026, 11, 10)
    assert refusal(lambda: make_up(engine, off, "u1", date(2026, 11, 9), now, "k0")) == (
        "makeup_disabled"
    )
    prog = programme(engine, **MAKEUP_RULES)
    award_points(engine, prog, "u1", 15, "seed", now, "seed")
    check_in(engine, prog, "u1", bj(2026, 11, 8))
    assert refusal(lambda: make_up(engine, prog, "u1", date(2026, 11, 6), now, "k1")) == (
        "makeup_too_old"
    )
    assert refusal(lambda: make_up(engine, prog, "u1", date(2026, 11, 10), now, "k2")) == (
        "makeup_not_past"
    )
    assert refusal(lambda: make_up(engine, prog, "u1", date(2026, 11, 8), now, "k3")) == (
        "already_checked_in"
    )
    done = make_up(engine, prog, "u1", date(2026, 11, 9), now, "k4")
    assert done["replayed"] is False and done["cost_points"] == 10
    assert make_up(engine, prog, "u1", date(2026, 11, 9), now, "k4")["replayed"] is True
    # u1: 15 − 10 for the card + 5 for the 2-day streak (the 8th and the 9th)
    assert balance(engine, prog, "u1") == 10
    check_in(engine, prog, "u1", now)  # streak 3 now: 8, 9, 10
    # u2 has no points for a card
    assert refusal(lambda: make_up(engine, prog, "u2", date(2026, 11, 9), now, "k5")) == (
        "insufficient_points"
    )
    award_points(engine, prog, "u1", 100, "seed2", now, "seed")
    later = bj(2026, 11, 12)
    make_up(engine, prog, "u1", date(2026, 11, 11), later, "k6")
    # two make-ups this month: the third is refused, next month it is allowed again
    assert refusal(
        lambda: make_up(engine, prog, "u1", date(2026, 11, 13), bj(2026, 11, 14), "k7")
    ) == ("makeup_limit_reached")
    december = make_up(engine, prog, "u1", date(2026, 11, 30), bj(2026, 12, 1, 0, 0), "k8")
    assert december["month_count"] == 5  # 8, 9, 10, 11 and 30 November


def test_a_make_up_joins_streaks_and_rewards_once(engine: sa.Engine) -> None:
    prog = programme(engine, **MAKEUP_RULES)
    award_points(engine, prog, "u1", 100, "seed", bj(2026, 11, 1), "seed")
    for day in (1, 2, 3, 5, 6):
        check_in(engine, prog, "u1", bj(2026, 11, day))
    # 2-day rewards: the run from the 1st and the run from the 5th
    before = {r.reward_key for r in rewards_of(engine, prog, "u1")}
    assert {k for k in before if k.startswith("checkin_streak")} == {
        "checkin_streak:u1:2026-11-01:2",
        "checkin_streak:u1:2026-11-05:2",
    }
    result = make_up(engine, prog, "u1", date(2026, 11, 4), bj(2026, 11, 7), "card")
    assert (result["streak"], result["current_streak_end"]) == (4, 6)
    c = checkins.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.day, c.streak).where(c.app_id == prog.app_id))
        streaks = {row.day: row.streak for row in rows}
    assert streaks == {date(2026, 11, d): d for d in range(1, 7)}
    after = {r.reward_key for r in rewards_of(engine, prog, "u1")}
    # the joined run reached 5 (new) and 6 (the badge); its 2-day reward was given already
    assert after - before == {"checkin_streak:u1:2026-11-01:5", "badge:u1:six"}
    assert balance(engine, prog, "u1") == 100 - 10 + 5 + 5 + 50
    # the next day continues the joined run; the 5-day reward is not given again
    next_day = check_in(engine, prog, "u1", bj(2026, 11, 7))
    assert next_day["streak"] == 7 and next_day["rewards"] == []
    status = checkin_status(engine, prog, "u1", bj(2026, 11, 7))
    assert status["makeup"]["used_this_month"] == 1 and status["makeup"]["left_this_month"] == 1


# --------------------------------------------------------------------------- ladder


def visit(event_id: str, user: str, at: datetime, event: str = "app_open") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event": event,
        "user_id": user,
        "ts": at,
        "amount": None,
        "properties": {},
    }


LADDER_RULES: dict[str, Any] = {
    "ladder": {
        "steps": [
            {"visit": 1, "reward": points_reward(1), "zh": "首访 1 分", "en": "1 point"},
            {"visit": 3, "reward": points_reward(8), "zh": "第 3 次 8 分", "en": "8 points"},
        ]
    },
    "tasks": [],
}


def test_the_third_visit_day_grants_once(engine: sa.Engine) -> None:
    prog = programme(engine, **LADDER_RULES)
    now = bj(2026, 11, 30)
    seq = [
        visit("e1", "u1", bj(2026, 11, 1, 9)),
        visit("e2", "u1", bj(2026, 11, 1, 21)),  # the same day: one visit day
        visit("e3", "u1", bj(2026, 11, 2, 9)),
    ]
    react(engine, prog, seq, False, now)
    progress = ladder_progress(engine, prog, "u1", bj(2026, 11, 2, 10))
    assert progress["count"] == 2 and progress["next_step"] == 3 and progress["to_go"] == 1
    assert [s["granted"] for s in progress["steps"]] == [True, False]
    report = react(engine, prog, [visit("e4", "u1", bj(2026, 11, 3, 0, 0))], False, now)
    assert report.visits == 1 and [r["points"] for r in report.rewards] == [8]
    react(engine, prog, [visit("e5", "u1", bj(2026, 11, 4)), *seq], False, now)
    progress = ladder_progress(engine, prog, "u1", bj(2026, 11, 4, 10))
    assert progress["count"] == 4 and progress["next_step"] is None
    assert [s["granted"] for s in progress["steps"]] == [True, True]
    keys = [r.reward_key for r in rewards_of(engine, prog, "u1")]
    assert keys == ["ladder:u1:2026-11:1", "ladder:u1:2026-11:3"]
    assert balance(engine, prog, "u1") == 9


def test_a_new_month_starts_the_ladder_again(engine: sa.Engine) -> None:
    prog = programme(engine, tasks=[])  # the default ladder: an 8-yuan coupon on the 3rd day
    now = bj(2026, 12, 2)
    react(
        engine,
        prog,
        [visit("a", "u1", bj(2026, 11, 28)), visit("b", "u1", bj(2026, 11, 29))],
        False,
        now,
    )
    progress = ladder_progress(engine, prog, "u1", bj(2026, 11, 30, 23, 0))
    assert progress["banner"] == {
        "zh": "本月已访问 2 次,再访问 1 次领 8 元无门槛券",
        "en": "2 visits this month; 1 more for 8 yuan off, no minimum",
    }
    assert progress["popup"] is False
    react(engine, prog, [visit("c", "u1", bj(2026, 11, 30, 23, 59))], False, now)
    react(engine, prog, [visit("d", "u1", bj(2026, 12, 1, 0, 0))], False, now)
    november = ladder_progress(engine, prog, "u1", bj(2026, 11, 30, 23, 59, 59))
    december = ladder_progress(engine, prog, "u1", bj(2026, 12, 1, 0, 0))
    assert (november["month"], november["count"]) == ("2026-11", 3)
    assert november["steps"][0]["granted"] is True
    assert november["banner"]["zh"].startswith("本月已访问 3 次,已达成")
    assert (december["month"], december["count"], december["popup"]) == ("2026-12", 1, True)
    assert december["steps"][0]["granted"] is False
    rewards = rewards_of(engine, prog, "u1")
    assert [r.reward_key for r in rewards] == ["ladder:u1:2026-11:3"]
    assert rewards[0].coupon_id is not None  # the 8-yuan coupon (coupons.issue_coupon)


def test_the_ladder_can_count_visits(engine: sa.Engine) -> None:
    rules = {**LADDER_RULES, "ladder": {**LADDER_RULES["ladder"], "counts": "visits"}}
    prog = programme(engine, **rules)
    now = bj(2026, 11, 30)
    evs = [visit(f"v{i}", "u1", bj(2026, 11, 5, 8 + i)) for i in range(3)]
    report = react(engine, prog, evs + evs, False, now)
    assert report.visits == 3
    assert ladder_progress(engine, prog, "u1", bj(2026, 11, 5, 20))["count"] == 3
    assert balance(engine, prog, "u1") == 9


def test_a_sold_out_coupon_leaves_the_visit_counted(engine: sa.Engine) -> None:
    """A reward that cannot be given is undone alone (a savepoint): the visit, the check-in
    and the other members' rewards stand."""
    rules = LoyaltyRules().model_dump()
    for template in rules["coupons"]["templates"]:
        if template["name"] in ("ladder_8", "streak_7"):
            template["total_limit"] = 1
    rules["tasks"] = []
    prog = programme(engine, **{k: rules[k] for k in ("coupons", "tasks")})
    now = bj(2026, 11, 30)
    for user in ("u1", "u2"):
        days = [visit(f"{user}-{d}", user, bj(2026, 11, d)) for d in (1, 2, 3)]
        report = react(engine, prog, days, False, now)
        assert report.visits == 3
    assert report.unavailable == [{"reward_key": "ladder:u2:2026-11:3", "code": "coupon_sold_out"}]
    first = ladder_progress(engine, prog, "u1", bj(2026, 11, 3))
    second = ladder_progress(engine, prog, "u2", bj(2026, 11, 3))
    assert (first["count"], first["steps"][0]["granted"]) == (3, True)
    assert (second["count"], second["steps"][0]["granted"]) == (3, False)
    for user in ("u1", "u2"):
        for i in range(7):
            result = check_in(engine, prog, user, bj(2026, 11, 1 + i))
        assert result["streak"] == 7
    assert result["unavailable"] == [
        {"reward_key": "checkin_streak:u2:2026-11-01:7", "code": "coupon_sold_out"}
    ]
    assert result["badges"] == ["streak_7"]


# --------------------------------------------------------------------------- tasks


def test_daily_tasks_count_events_of_the_local_day(engine: sa.Engine) -> None:
    prog = programme(engine, earning=[])  # the default tasks: share once (10), 3 pages (5)
    now = bj(2026, 11, 30)
    views = [visit(f"p{i}", "u1", bj(2026, 11, 5, 23, 57 + i), "page_view") for i in range(3)]
    late = visit("p3", "u1", bj(2026, 11, 6, 0, 1), "page_view")
    react(engine, prog, [*views[:2], late, *views[:2]], False, now)
    today = tasks_today(engine, prog, "u1", bj(2026, 11, 5, 23, 59))
    browse = next(t for t in today["tasks"] if t["name"] == "browse_3")
    assert (browse["progress"], browse["done"], browse["granted"]) == (2, False, False)
    react(engine, prog, [views[2], visit("s1", "u1", bj(2026, 11, 5, 10), "share")], False, now)
    today = tasks_today(engine, prog, "u1", bj(2026, 11, 5, 23, 59))
    assert [(t["name"], t["progress"], t["done"], t["granted"]) for t in today["tasks"]] == [
        ("share_once", 1, True, True),
        ("browse_3", 3, True, True),
    ]
    # more views the same day give nothing more; the next day starts from the one at 00:01
    react(engine, prog, [visit("p9", "u1", bj(2026, 11, 5, 23, 59, 59), "page_view")], False, now)
    nextday = tasks_today(engine, prog, "u1", bj(2026, 11, 6, 8))
    assert [t["progress"] for t in nextday["tasks"]] == [0, 1]
    assert balance(engine, prog, "u1") == 15
    keys = [r.reward_key for r in rewards_of(engine, prog, "u1")]
    assert keys == ["task:u1:2026-11-05:browse_3", "task:u1:2026-11-05:share_once"]


# --------------------------------------------------------------------------- HTTP

API_NOW = bj(2026, 11, 8, 10)


@pytest.fixture
def api(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    with loyalty_server(tmp_path, state_url, API_NOW) as srv:
        yield {"client": srv.client, "creds": srv.creds, "auth": srv.user_headers("u1")}


def test_activity_routes(api: dict[str, Any]) -> None:
    c, auth = api["client"], api["auth"]
    assert c.post("/v1/loyalty/checkin").status_code == 401
    first = c.post("/v1/loyalty/checkin", headers=auth)
    assert first.status_code == 200, first.text
    assert (first.json()["day"], first.json()["already_checked_in"]) == ("2026-11-08", False)
    again = c.post("/v1/loyalty/checkin", headers=auth).json()
    assert again["already_checked_in"] is True and again["streak"] == 1
    status = c.get("/v1/loyalty/checkin", headers=auth).json()
    assert status["checked_in_today"] is True and status["month_days"] == ["2026-11-08"]
    makeup = c.post("/v1/loyalty/checkin/makeup", json={"day": "2026-11-07"}, headers=auth)
    assert makeup.status_code == 422  # no Idempotency-Key
    makeup = c.post(
        "/v1/loyalty/checkin/makeup",
        json={"day": "2026-11-07"},
        headers={**auth, "Idempotency-Key": "m1"},
    )
    assert makeup.status_code == 409 and makeup.json()["detail"]["code"] == "makeup_disabled"
    bad = c.post(
        "/v1/loyalty/checkin/makeup", json={"day": "nope"}, headers={**auth, "Idempotency-Key": "m"}
    )
    assert bad.status_code == 422
    ladder = c.get("/v1/loyalty/ladder", headers=auth).json()
    assert ladder["count"] == 0 and ladder["banner"]["zh"].startswith("本月已访问 0 次")
    tasks = c.get("/v1/loyalty/tasks", headers=auth).json()
    assert [t["name"] for t in tasks["tasks"]] == ["share_once", "browse_3"]
    day = c.get("/v1/loyalty/member-day", headers=auth).json()
    assert day["today"] is True and day["points_multiplier"] == 2
    admin = {"Authorization": f"Bearer {api['creds'].admin_token}"}
    path = f"/admin/v1/apps/{api['creds'].app_id}/loyalty/checkins"
    assert c.get(path, headers=admin).json() == {"day": "2026-11-08", "checkins": 1, "makeups": 0}
    assert c.get(path, params={"day": "2026-11-07"}, headers=admin).json()["checkins"] == 0
    assert c.get(path, params={"day": "x"}, headers=admin).status_code == 422
