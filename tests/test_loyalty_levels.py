"""Levels and leaderboards against plain-Python references written from their definitions
(docs/loyalty.md, levels.py and boards.py docstrings), never by calling them: growth from
spending (exact rounding down), daily caps cut at local midnight, the upgrade at the threshold
exactly, the review after a quiet year, random growth histories; leaderboards on random data
with ties and week and month bounds at local midnight; the HTTP routes. Every store test runs
on SQLite and on PostgreSQL.

Asia/Shanghai is UTC+8: 16:00Z is local midnight of the next date; 2026-11-15 is a Sunday, so
2026-11-15T16:00Z begins Monday 2026-11-16 there.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from liucun.loyalty.boards import leaderboard
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.levels import add_growth, level_status, review_levels, spend_growth
from liucun.loyalty.members import Member, find_member, lock_member
from liucun.loyalty.programme import Programme, programme_of
from liucun.playbook.loyalty import LoyaltyRules
from liucun.playbook.store import apply_playbook
from liucun.state.apps import create_app, find_app
from liucun.state.db import write_transaction
from liucun.state.tables import checkins, level_changes, points_journal
from tests.loyalty_helpers import loyalty_server

TZ = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TZ)
T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 local, Monday 2 March 2026
TIERS = [
    {"name": "member", "zh": "普通", "en": "Member", "min_growth": 0},
    {"name": "silver", "zh": "银卡", "en": "Silver", "min_growth": 1000, "discount_percent": 2},
    {
        "name": "gold",
        "zh": "金卡",
        "en": "Gold",
        "min_growth": 5000,
        "discount_percent": 5,
        "points_multiplier": 1.5,
        "early_access": True,
    },
]


def new_programme(engine: sa.Engine, **loyalty: Any) -> Programme:
    """A new app in Asia/Shanghai whose playbook sets the given `loyalty` keys."""
    creds = create_app(engine, f"shop-{secrets.token_hex(6)}", TZ)
    if loyalty:
        text = yaml.safe_dump({"version": 1, "loyalty": loyalty}, allow_unicode=True)
        apply_playbook(engine, creds.app_id, text)
    return programme_of(engine, find_app(engine, creds.app_id))


def levels_rules(**review: Any) -> dict[str, Any]:
    return {
        "levels": {
            "growth": {"per_yuan": 1.0, "per_active_day": 3, "per_share": 2, "share_daily_cap": 5},
            "tiers": TIERS,
            "review": {"every_days": 365, "window_days": 365, "max_drop": 1, **review},
        }
    }


def grow(
    engine: sa.Engine,
    prog: Programme,
    user: str,
    source: str,
    amount: int,
    key: str,
    now: datetime,
) -> tuple[int, Member]:
    with write_transaction(engine) as conn:
        member = lock_member(conn, prog, user, now)
        added = add_growth(conn, prog, member, source, amount, key, now)
    return added, member


def changes_of(engine: sa.Engine, prog: Programme, user: str) -> list[tuple[str, str, str]]:
    c = level_changes.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.old_level, c.new_level, c.reason)
            .where(c.app_id == prog.app_id, c.user_id == user)
            .order_by(c.change_id)
        ).all()
    return [tuple(r) for r in rows]


# --------------------------------------------------------------------------- growth


@given(
    fen=st.integers(min_value=0, max_value=10**9),
    per_yuan=st.sampled_from([0.0, 0.1, 0.3, 0.5, 1.0, 1.5, 2.3, 7.77, 10.0]),
)
@hsettings(max_examples=60, deadline=None)
def test_spend_growth_is_rounded_down_exactly(fen: int, per_yuan: float) -> None:
    rules = LoyaltyRules.model_validate({"levels": {"growth": {"per_yuan": per_yuan}}})
    prog = Programme("app", SHANGHAI, rules, 0)
    # per_yuan as written in the playbook (a decimal), fen / 100 yuan, rounded down
    expected = math.floor(Fraction(str(per_yuan)) * fen / 100)
    assert spend_growth(prog, fen) == expected


def test_upgrade_at_the_threshold_exactly(engine: sa.Engine) -> None:
    prog = new_programme(engine, **levels_rules())
    # 999.99 yuan: 999 growth, one short of silver
    added, member = grow(engine, prog, "u1", "spend", 99_999, "spend:o1", T0)
    assert (added, member.growth, member.level) == (999, 999, "member")
    # one more fen gives no growth: still member
    added, member = grow(engine, prog, "u1", "spend", 1, "spend:o2", T0)
    assert (added, member.level) == (0, "member")
    added, member = grow(engine, prog, "u1", "adjust", 1, "adjust:1", T0 + timedelta(hours=1))
    assert (added, member.growth, member.level) == (1, 1000, "silver")
    assert member.level_since == T0 + timedelta(hours=1)
    # the same key again adds nothing
    added, member = grow(engine, prog, "u1", "adjust", 1, "adjust:1", T0 + timedelta(hours=2))
    assert (added, member.growth) == (0, 1000)
    # from 1000 to 5000 in one order: straight to gold
    added, member = grow(engine, prog, "u1", "spend", 400_000, "spend:o3", T0 + timedelta(days=1))
    assert (added, member.growth, member.level) == (4000, 5000, "gold")
    assert changes_of(engine, prog, "u1") == [
        ("member", "silver", "upgrade"),
        ("silver", "gold", "upgrade"),
    ]


def test_a_negative_adjustment_never_takes_growth_below_zero_nor_lowers_the_level(
    engine: sa.Engine,
) -> None:
    prog = new_programme(engine, **levels_rules())
    grow(engine, prog, "u1", "adjust", 1200, "a1", T0)
    added, member = grow(engine, prog, "u1", "adjust", -5000, "a2", T0)
    assert (added, member.growth, member.level) == (-1200, 0, "silver")


def test_shares_and_active_days_are_capped_per_local_day(engine: sa.Engine) -> None:
    prog = new_programme(engine, **levels_rules())
    before_midnight = datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC)  # 23:59:59 local, 2 March
    midnight = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 00:00 local, 3 March
    got = [grow(engine, prog, "u1", "share", 1, f"s{i}", before_midnight)[0] for i in range(7)]
    assert got == [2] * 5 + [0, 0]  # 5 shares a day count, 2 growth each
    got = [grow(engine, prog, "u1", "share", 1, f"t{i}", midnight)[0] for i in range(2)]
    assert got == [2, 2]  # a new local day
    days = [
        grow(engine, prog, "u1", "active_day", 1, key, when)[0]
        for key, when in [("d1", before_midnight), ("d1b", before_midnight), ("d2", midnight)]
    ]
    assert days == [3, 0, 3]
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, "u1")
    assert member is not None and member.growth == 5 * 2 + 2 * 2 + 3 + 3


def test_an_unknown_growth_source_is_a_programming_error(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    with pytest.raises(ValueError, match="growth source"):
        grow(engine, prog, "u1", "likes", 1, "k", T0)


# --------------------------------------------------------------------------- review


def test_review_lowers_by_at_most_max_drop_after_a_quiet_year(engine: sa.Engine) -> None:
    prog = new_programme(engine, **levels_rules())
    grow(engine, prog, "quiet", "spend", 600_000, "q1", T0)  # 6000: gold
    grow(engine, prog, "busy", "spend", 600_000, "b1", T0)
    grow(engine, prog, "busy", "spend", 600_000, "b2", T0 + timedelta(days=300))
    grow(engine, prog, "fresh", "spend", 100, "f1", T0 + timedelta(days=200))  # joined later
    # not due yet: nothing changes a day before the year is up
    assert review_levels(engine, prog, T0 + timedelta(days=364)) == []
    year = T0 + timedelta(days=366)
    changes = review_levels(engine, prog, year)
    assert [(c.user_id, c.old_level, c.new_level, c.reason) for c in changes] == [
        ("quiet", "gold", "silver", "review")  # no growth: one level down, not two
    ]
    # reviewed now: running it again changes nothing
    assert review_levels(engine, prog, year + timedelta(hours=1)) == []
    status = level_status(engine, prog, "quiet", year)
    assert status["level"]["name"] == "silver"
    assert status["next_review"] == prog.day(year + timedelta(days=365))
    # another quiet year: silver → member; `busy` (6000 at day 300, out of the window at
    # 300 + 365 + 1) drops one level too; `fresh` joined at day 200, due at day 565
    later = changes_of(engine, prog, "quiet")
    assert later == [("member", "gold", "upgrade"), ("gold", "silver", "review")]
    changes = review_levels(engine, prog, year + timedelta(days=366))
    assert sorted((c.user_id, c.new_level) for c in changes) == [
        ("busy", "silver"),
        ("quiet", "member"),
    ]


def test_max_drop_zero_never_lowers(engine: sa.Engine) -> None:
    prog = new_programme(engine, **levels_rules(max_drop=0))
    grow(engine, prog, "u1", "spend", 600_000, "q1", T0)
    assert review_levels(engine, prog, T0 + timedelta(days=800)) == []
    assert level_status(engine, prog, "u1", T0 + timedelta(days=800))["level"]["name"] == "gold"


def expected_levels(
    history: list[tuple[datetime, int]], review_at: datetime, rules: LoyaltyRules
) -> tuple[str, str]:
    """The level after the growth `history` (upgrades at once) and after one review at
    `review_at` — written from the definitions, with app-local day windows."""
    tiers = rules.levels.tiers
    window_days = rules.levels.review.window_days

    def window(at: datetime) -> int:
        first = at.astimezone(SHANGHAI).date() - timedelta(days=window_days - 1)
        start = datetime.combine(first, time(), SHANGHAI)
        return max(0, sum(g for when, g in history if start <= when <= at))

    def earned(growth: int) -> int:
        return max(i for i, t in enumerate(tiers) if growth >= t.min_growth)

    level = 0
    for when, _ in history:
        level = max(level, earned(window(when)))
    before = tiers[level].name
    reviewed = max(earned(window(review_at)), level - rules.levels.review.max_drop)
    return before, tiers[reviewed].name


def test_random_growth_histories_match_the_reference(engine: sa.Engine) -> None:
    rng = random.Random(7)
    prog = new_programme(engine, **levels_rules(every_days=30, window_days=90, max_drop=1))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    review_at = start + timedelta(days=120, hours=rng.randrange(24))
    histories: dict[str, list[tuple[datetime, int]]] = {}
    for u in range(16):
        user = f"user-{u}"
        # some members grow only in the first 25 days: out of the window at the review
        span = rng.choice([25, 119]) * 24 * 60
        times = sorted(start + timedelta(minutes=rng.randrange(0, span)) for _ in range(6))
        # the first entry joins the member at `start`, so that it is due at `review_at`
        times[0] = start
        history = []
        for i, when in enumerate(times):
            amount = rng.choice([0, 50, 200, 999, 1000, 2500, 4000])
            grow(engine, prog, user, "adjust", amount, f"{user}:{i}", when)
            history.append((when, amount))
        histories[user] = history
    before = {u: expected_levels(h, review_at, prog.rules)[0] for u, h in histories.items()}
    got_before = {u: level_status(engine, prog, u, review_at)["level"]["name"] for u in histories}
    assert got_before == before
    review_levels(engine, prog, review_at)
    after = {u: expected_levels(h, review_at, prog.rules)[1] for u, h in histories.items()}
    got_after = {u: level_status(engine, prog, u, review_at)["level"]["name"] for u in histories}
    assert got_after == after
    # the data exercised a drop held by max_drop (gold to silver with nothing in the window),
    # a drop to the entry tier and a level kept
    pairs = {(before[u], after[u]) for u in histories}
    assert {("gold", "silver"), ("silver", "member"), ("gold", "gold")} <= pairs, pairs


def test_level_status_shows_benefits_and_what_the_next_tier_needs(engine: sa.Engine) -> None:
    prog = new_programme(engine, **levels_rules(window_days=1))
    unseen = level_status(engine, prog, "nobody", T0)
    assert unseen["level"]["name"] == "member" and unseen["growth"]["total"] == 0
    assert unseen["next"]["growth_needed"] == 1000 and unseen["next_review"] is None
    before_midnight = datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC)
    grow(engine, prog, "u1", "spend", 120_000, "o1", before_midnight)
    status = level_status(engine, prog, "u1", before_midnight)
    assert status["level"] == {"name": "silver", "zh": "银卡", "en": "Silver"}
    assert status["benefits"] == {
        "discount_percent": 2,
        "points_multiplier": 1,
        "exclusive_service": False,
        "early_access": False,
    }
    assert status["growth"] == {"total": 1200, "in_window": 1200, "window_days": 1}
    assert status["next"]["name"] == "gold" and status["next"]["growth_needed"] == 3800
    assert status["keep_needed"] == 0
    # a one-day window ends at local midnight: the growth is out of it a second later
    next_day = level_status(engine, prog, "u1", before_midnight + timedelta(seconds=1))
    assert next_day["growth"]["in_window"] == 0 and next_day["keep_needed"] == 1000
    assert next_day["growth"]["total"] == 1200


# --------------------------------------------------------------------------- leaderboards

USERS = ["alice", "Bob", "bob", "ä-user", "Zed", "émile", "u1", "u10", "u2", "小明", "x", "y"]


def local(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), SHANGHAI).astimezone(UTC)


def reference_board(
    values: dict[str, int], size: int, user: str
) -> tuple[list[tuple[int, str, int]], tuple[int | None, int]]:
    ranked = sorted(((v, u) for u, v in values.items() if v > 0), key=lambda p: (-p[0], p[1]))

    def rank(v: int) -> int:
        return 1 + sum(1 for w, _ in ranked if w > v)

    entries = [(rank(v), u, v) for v, u in ranked[:size]]
    mine = values.get(user, 0)
    return entries, (rank(mine) if mine > 0 else None, mine)


def reference_period(now: datetime, period: str) -> tuple[date, date]:
    today = now.astimezone(SHANGHAI).date()
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=6)
    first = today.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def test_leaderboards_match_the_reference_on_random_data(engine: sa.Engine) -> None:
    rng = random.Random(11)
    prog = new_programme(engine, leaderboards={"size": 5})
    # days from Monday 26 Oct to Sunday 6 Dec 2026: weeks and the Oct/Nov/Dec month ends
    first_day = date(2026, 10, 26)
    days = [first_day + timedelta(days=i) for i in range(42)]
    checkin_rows, journal_rows = [], []
    for user in USERS:
        for day in rng.sample(days, rng.randrange(0, 20)):
            checkin_rows.append(
                {
                    "app_id": prog.app_id,
                    "user_id": user,
                    "day": day,
                    "streak": 1,
                    "makeup": False,
                    "checked_at": local(day, 9),
                }
            )
        for _ in range(rng.randrange(0, 15)):
            day = rng.choice(days)
            # times at the edges of local days: the last and first second, and noon
            when = rng.choice([local(day), local(day, 23, 59, 59), local(day, 12)])
            kind, debit, credit = rng.choice(
                [
                    ("earn", "earned", "member"),
                    ("earn", "earned", "member"),
                    ("spend", "member", "spent"),
                    ("adjust", "adjusted", "member"),
                    ("reverse", "member", "reversed"),
                ]
            )
            journal_rows.append(
                {
                    "app_id": prog.app_id,
                    "user_id": user,
                    "operation_key": secrets.token_hex(8),
                    "kind": kind,
                    "debit": debit,
                    "credit": credit,
                    "points": rng.choice([5, 10, 10, 20]),  # few values: ties
                    "created_at": when,
                }
            )
    with engine.begin() as conn:
        conn.execute(checkins.insert(), checkin_rows)
        conn.execute(points_journal.insert(), journal_rows)

    def values(metric: str, first: date, last: date) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        if metric == "checkins":
            for row in checkin_rows:
                if first <= row["day"] <= last:
                    out[row["user_id"]] += 1
            return out
        start = datetime.combine(first, time(), SHANGHAI)
        end = datetime.combine(last + timedelta(days=1), time(), SHANGHAI)
        for row in journal_rows:
            earned = row["kind"] == "earn" and row["credit"] == "member"
            if earned and start <= row["created_at"] < end:
                out[row["user_id"]] += row["points"]
        return out

    monday = date(2026, 11, 16)
    moments = [
        local(monday) - timedelta(seconds=1),  # Sunday 23:59:59 local: the week before
        local(monday),  # Monday 00:00 local: a new week
        local(date(2026, 11, 30), 23, 59, 59),  # the last second of November
        local(date(2026, 12, 1)),  # December begins, mid-week
        local(date(2026, 11, 4), 12),
    ]
    ties_seen = False
    for now in moments:
        for metric in ("checkins", "points_earned"):
            for period in ("week", "month"):
                user = rng.choice(USERS)
                board = leaderboard(engine, prog, metric, period, now, user)  # type: ignore[arg-type]
                first, last = reference_period(now, period)
                assert (board["first_day"], board["last_day"]) == (first, last)
                entries, (rank, value) = reference_board(values(metric, first, last), 5, user)
                got = [(e["rank"], e["user_id"], e["value"]) for e in board["entries"]]
                assert got == entries, (now, metric, period)
                assert (board["me"]["rank"], board["me"]["value"]) == (rank, value)
                ranks = [e[0] for e in entries]
                ties_seen |= len(ranks) != len(set(ranks))
    assert ties_seen  # the data had ties: shared ranks were checked


def test_ties_share_a_rank_and_the_next_rank_skips(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    day = date(2026, 11, 18)
    counts = {"a": 3, "b": 2, "c": 2, "d": 1}
    rows = [
        {
            "app_id": prog.app_id,
            "user_id": user,
            "day": day - timedelta(days=i),
            "streak": 1,
            "makeup": False,
            "checked_at": local(day),
        }
        for user, n in counts.items()
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(checkins.insert(), rows)
    board = leaderboard(engine, prog, "checkins", "week", local(day, 12), "nobody")
    assert [(e["rank"], e["user_id"]) for e in board["entries"]] == [
        (1, "a"),
        (2, "b"),
        (2, "c"),
        (4, "d"),
    ]
    assert board["me"] == {"user_id": "nobody", "rank": None, "value": 0}


def test_a_metric_the_playbook_leaves_out_is_unknown(engine: sa.Engine) -> None:
    prog = new_programme(engine, leaderboards={"metrics": ["checkins"]})
    with pytest.raises(LoyaltyError) as refused:
        leaderboard(engine, prog, "points_earned", "week", T0)
    assert (refused.value.code, refused.value.status) == ("unknown_leaderboard", 404)


# --------------------------------------------------------------------------- HTTP


def test_level_and_board_routes(tmp_path: Path, state_url: str) -> None:
    text = yaml.safe_dump({"version": 1, "loyalty": levels_rules()})
    with loyalty_server(tmp_path, state_url, T0, text) as srv:
        client, runtime, creds = srv.client, srv.runtime, srv.creds
        user = srv.user_headers("u1")
        admin = {"Authorization": f"Bearer {creds.admin_token}"}
        prog = programme_of(runtime.state, find_app(runtime.state, creds.app_id))
        grow(runtime.state, prog, "u1", "spend", 150_000, "o1", T0)

        got = client.get("/v1/loyalty/level", headers=user)
        assert got.status_code == 200, got.text
        assert got.json()["level"]["name"] == "silver"
        assert got.json()["next"]["growth_needed"] == 3500

        with write_transaction(runtime.state) as conn:
            conn.execute(
                checkins.insert().values(
                    app_id=creds.app_id,
                    user_id="u1",
                    day=prog.day(T0),
                    streak=1,
                    makeup=False,
                    checked_at=T0,
                )
            )
        board = client.get("/v1/loyalty/leaderboards/checkins?period=month", headers=user)
        assert board.status_code == 200, board.text
        assert board.json()["entries"] == [{"rank": 1, "user_id": "u1", "value": 1}]
        assert board.json()["me"]["rank"] == 1
        assert client.get("/v1/loyalty/leaderboards/likes", headers=user).status_code == 422
        assert client.get("/v1/loyalty/level").status_code == 401

        levels = client.get(f"/admin/v1/apps/{creds.app_id}/loyalty/levels", headers=admin)
        assert levels.status_code == 200, levels.text
        assert [(t["name"], t["members"]) for t in levels.json()["tiers"]] == [
            ("member", 0),
            ("silver", 1),
            ("gold", 0),
        ]
        runtime.clock = lambda: T0 + timedelta(days=400)
        review = client.post(f"/admin/v1/apps/{creds.app_id}/loyalty/levels/review", headers=admin)
        assert review.status_code == 200, review.text
        assert [(c["user_id"], c["new_level"]) for c in review.json()["changes"]] == [
            ("u1", "member")
        ]
