"""Daily check-in (签到): once per member per app-local day, with a streak, a monthly count, the
playbook's rewards for both, badges, and make-up cards (补签卡) for a missed day.

Definitions (`loyalty.checkin` in the playbook):
- a check-in belongs to the app-local day it was made on (23:59 and 00:01 Beijing are two
  days; 00:01 and 23:59 of one Beijing day are one);
- its streak is the streak of the day before plus one, or 1 when the day before has none;
- the monthly count is the member's check-ins in the app-local calendar month of the day;
- `points`: given for every check-in;
- `monthly`: a reward once per month when the month's count reaches `count`;
- `streaks`: a reward once per streak when the streak reaches `days` (keyed by the streak's
  first day);
- `badges`: a badge, once ever, when a streak reaches `streak`;
- `makeup`: off by default; checks in for a missed day at most `max_days_back` days ago, at
  most `per_month` make-ups in the current month, for `cost_points` points; the streaks after
  the made-up day are recomputed (two streaks may join into one).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.ledger import Entry, debit
from liucun.loyalty.members import Member, find_member
from liucun.loyalty.operations import check_key, run_once
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import Granted, grant_badge, grant_softly
from liucun.playbook.loyalty import Reward
from liucun.state.tables import checkins, loyalty_operations, loyalty_rewards

KEY_MAX = 200  # the width of reward and operation keys


def short_key(prefix: str, *parts: object) -> str:
    """The key `prefix:part:…`; past the 200 characters a key column holds (a very long user
    id) the prefix and a digest of the whole, which is as unique."""
    key = ":".join([prefix, *(str(p) for p in parts)])
    if len(key) <= KEY_MAX:
        return key
    return f"{prefix}:#{hashlib.sha256(key.encode()).hexdigest()}"


def reward_json(reward: Reward) -> dict[str, Any]:
    return {"points": reward.points, "coupon": reward.coupon}


class Grants:
    """What one operation granted, and what it could not."""

    def __init__(self) -> None:
        self.rewards: list[dict[str, Any]] = []
        self.unavailable: list[dict[str, str]] = []

    def add(self, outcome: tuple[Granted | None, str | None], key: str) -> None:
        granted, refused = outcome
        if granted is not None:
            self.rewards.append(granted.as_json())
        if refused is not None:
            self.unavailable.append({"reward_key": key, "code": refused})


# --------------------------------------------------------------------------- reading


def _row(conn: sa.Connection, prog: Programme, user_id: str, day: date) -> Any:
    c = checkins.c
    return conn.execute(
        sa.select(checkins).where(c.app_id == prog.app_id, c.user_id == user_id, c.day == day)
    ).first()


def _streak_on(conn: sa.Connection, prog: Programme, user_id: str, day: date) -> int:
    row = _row(conn, prog, user_id, day)
    return int(row.streak) if row else 0


def _month_days(conn: sa.Connection, prog: Programme, user_id: str, day: date) -> list[date]:
    """The member's check-in days in `day`'s calendar month."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    c = checkins.c
    return list(
        conn.execute(
            sa.select(c.day)
            .where(
                c.app_id == prog.app_id,
                c.user_id == user_id,
                c.day >= first,
                c.day < following,
            )
            .order_by(c.day)
        ).scalars()
    )


def _makeups_this_month(conn: sa.Connection, prog: Programme, user_id: str, now: datetime) -> int:
    """Make-ups the member made (by when they were made) in the app-local month of `now`."""
    first, last = prog.month_bounds(now)
    c = checkins.c
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                c.app_id == prog.app_id,
                c.user_id == user_id,
                c.makeup.is_(True),
                c.checked_at >= prog.start_of(first),
                c.checked_at < prog.start_of(last + timedelta(days=1)),
            )
        ).scalar_one()
    )


# --------------------------------------------------------------------------- granting


def _grant_monthly(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    day: date,
    count: int,
    now: datetime,
    grants: Grants,
) -> None:
    """The monthly rewards whose `count` the month of `day` has reached (each once a month)."""
    month = day.strftime("%Y-%m")
    for rule in prog.rules.checkin.monthly:
        if count >= rule.count:
            key = short_key("checkin_month", member.user_id, month, rule.count)
            reason = f"{rule.count} check-ins in {month}"
            grants.add(
                grant_softly(conn, prog, member, rule.reward, key, "checkin", now, reason), key
            )


def _grant_streak(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    first_day: date,
    days: int,
    reward: Reward,
    now: datetime,
    grants: Grants,
) -> None:
    key = short_key("checkin_streak", member.user_id, first_day.isoformat(), days)
    reason = f"{days} check-ins in a row from {first_day}"
    grants.add(grant_softly(conn, prog, member, reward, key, "streak", now, reason), key)


def _grant_badges(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    streak: int,
    now: datetime,
    badges: list[str],
) -> None:
    for badge in prog.rules.checkin.badges:
        if streak >= badge.streak and grant_badge(conn, prog, member, badge.name, now):
            badges.append(badge.name)


# --------------------------------------------------------------------------- check-in


def _day_key(user_id: str, day: date) -> str:
    return short_key("checkin", user_id, day.isoformat())


def _result_of_day(conn: sa.Connection, prog: Programme, member: Member, day: date) -> Any:
    """The first answer of `day`'s check-in (kept under the day's key), or one rebuilt from
    the row when the day was checked in otherwise (a make-up)."""
    o = loyalty_operations.c
    stored = conn.execute(
        sa.select(o.result).where(
            o.app_id == prog.app_id, o.idempotency_key == _day_key(member.user_id, day)
        )
    ).scalar()
    if stored is not None:
        return orjson.loads(stored)
    row = _row(conn, prog, member.user_id, day)
    return {
        "user_id": member.user_id,
        "day": day.isoformat(),
        "streak": row.streak,
        "makeup": row.makeup,
        "month_count": len(_month_days(conn, prog, member.user_id, day)),
        "points": 0,
        "rewards": [],
        "badges": [],
        "unavailable": [],
    }


def _record(
    conn: sa.Connection, prog: Programme, member: Member, day: date, now: datetime, makeup: bool
) -> int:
    """Store the member's check-in for `day`, its streak one more than the day before's."""
    streak = _streak_on(conn, prog, member.user_id, day - timedelta(days=1)) + 1
    conn.execute(
        checkins.insert().values(
            app_id=prog.app_id,
            user_id=member.user_id,
            day=day,
            streak=streak,
            makeup=makeup,
            checked_at=now,
        )
    )
    return streak


def _check_in_work(
    conn: sa.Connection, prog: Programme, member: Member, day: date, now: datetime
) -> dict[str, Any]:
    if _row(conn, prog, member.user_id, day) is not None:
        return {**_result_of_day(conn, prog, member, day), "already_checked_in": True}
    streak = _record(conn, prog, member, day, now, makeup=False)
    rules = prog.rules.checkin
    grants = Grants()
    badges: list[str] = []
    if rules.points:
        key = short_key("checkin_points", member.user_id, day.isoformat())
        reward = Reward(points=rules.points)
        grants.add(grant_softly(conn, prog, member, reward, key, "checkin", now, "check-in"), key)
    count = len(_month_days(conn, prog, member.user_id, day))
    _grant_monthly(conn, prog, member, day, count, now, grants)
    first_day = day - timedelta(days=streak - 1)
    for rule in rules.streaks:
        # exactly: a check-in lengthens the streak by one, so each threshold is met once
        if streak == rule.days:
            _grant_streak(conn, prog, member, first_day, rule.days, rule.reward, now, grants)
    _grant_badges(conn, prog, member, streak, now, badges)
    return {
        "user_id": member.user_id,
        "day": day.isoformat(),
        "already_checked_in": False,
        "streak": streak,
        "makeup": False,
        "month_count": count,
        "points": rules.points,
        "rewards": grants.rewards,
        "badges": badges,
        "unavailable": grants.unavailable,
    }


def check_in(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime, key: str | None = None
) -> dict[str, Any]:
    """Check the member in for the app-local day of `now` and grant what it earns. Once a day:
    a second call that day answers the day's result with `already_checked_in: true` and
    changes nothing. `key` is the operation's idempotency key (default: one per member and
    day)."""
    day = prog.day(now)
    day_key = _day_key(user_id, day)
    outcome = run_once(
        engine,
        prog,
        user_id,
        check_key(key) if key else day_key,
        "checkin",
        {"day": day.isoformat()},
        now,
        lambda conn, member: _check_in_work(conn, prog, member, day, now),
    )
    if outcome.replayed:
        return {**outcome.result, "already_checked_in": True}
    return outcome.result


# --------------------------------------------------------------------------- make-up


def _check_makeup_allowed(prog: Programme, day: date, now: datetime) -> None:
    rules = prog.rules.checkin.makeup
    if not rules.enabled:
        raise LoyaltyError(
            "makeup_disabled",
            "make-up check-ins are not offered",
            "暂未开放补签",
        )
    back = (prog.day(now) - day).days
    if back < 1:
        raise LoyaltyError(
            "makeup_not_past",
            "a make-up is for a past day: check in today instead",
            "只能补签过去的日期,今天请直接签到",
            status=422,
        )
    if back > rules.max_days_back:
        raise LoyaltyError(
            "makeup_too_old",
            f"a make-up reaches back at most {rules.max_days_back} days",
            f"最多只能补签 {rules.max_days_back} 天内的日期",
        )


def _restreak_after(
    conn: sa.Connection, prog: Programme, user_id: str, day: date, streak: int
) -> tuple[int, int]:
    """Renumber the check-ins in a row after `day` (whose streak is now `streak`). Returns the
    streak of the run's last day, before and after (0 before when no day follows)."""
    c = checkins.c
    following = conn.execute(
        sa.select(c.day, c.streak)
        .where(c.app_id == prog.app_id, c.user_id == user_id, c.day > day)
        .order_by(c.day)
    ).all()
    old, expected = 0, day + timedelta(days=1)
    for row in following:
        if row.day != expected:
            break
        streak += 1
        old = row.streak
        conn.execute(
            checkins.update()
            .where(c.app_id == prog.app_id, c.user_id == user_id, c.day == row.day)
            .values(streak=streak)
        )
        expected += timedelta(days=1)
    return old, streak


def _make_up_work(
    conn: sa.Connection, prog: Programme, member: Member, day: date, key: str, now: datetime
) -> dict[str, Any]:
    rules = prog.rules.checkin
    if _row(conn, prog, member.user_id, day) is not None:
        raise LoyaltyError(
            "already_checked_in",
            f"{day} already has a check-in",
            f"{day} 已签到",
        )
    if _makeups_this_month(conn, prog, member.user_id, now) >= rules.makeup.per_month:
        raise LoyaltyError(
            "makeup_limit_reached",
            f"at most {rules.makeup.per_month} make-ups a month",
            f"每月最多补签 {rules.makeup.per_month} 次",
        )
    if rules.makeup.cost_points:
        entry = Entry(key, reason=f"make-up check-in for {day}")
        debit(conn, prog, member, rules.makeup.cost_points, entry, now)
    streak = _record(conn, prog, member, day, now, makeup=True)
    trailing_before, run_end = _restreak_after(conn, prog, member.user_id, day, streak)
    grants = Grants()
    badges: list[str] = []
    count = len(_month_days(conn, prog, member.user_id, day))
    _grant_monthly(conn, prog, member, day, count, now, grants)
    first_day = day - timedelta(days=streak - 1)
    for rule in rules.streaks:
        # the joined run reached the threshold; the run after the gap had not reached it on
        # its own (else it was rewarded then), and the run before is the same streak as the
        # joined one (same first day, same key), so nothing is given twice
        if trailing_before < rule.days <= run_end:
            _grant_streak(conn, prog, member, first_day, rule.days, rule.reward, now, grants)
    _grant_badges(conn, prog, member, run_end, now, badges)
    return {
        "user_id": member.user_id,
        "day": day.isoformat(),
        "streak": streak,
        "current_streak_end": run_end,
        "month_count": count,
        "cost_points": rules.makeup.cost_points,
        "rewards": grants.rewards,
        "badges": badges,
        "unavailable": grants.unavailable,
    }


def make_up(
    engine: sa.Engine, prog: Programme, user_id: str, day: date, now: datetime, key: str
) -> dict[str, Any]:
    """Check the member in for the missed app-local `day` with a make-up card, once per `key`.
    Refused with `makeup_disabled`, `makeup_not_past`, `makeup_too_old`,
    `makeup_limit_reached`, `already_checked_in` or `insufficient_points`."""
    _check_makeup_allowed(prog, day, now)
    outcome = run_once(
        engine,
        prog,
        user_id,
        key,
        "checkin_makeup",
        {"day": day.isoformat()},
        now,
        lambda conn, member: _make_up_work(conn, prog, member, day, key, now),
    )
    return {**outcome.result, "replayed": outcome.replayed}


# --------------------------------------------------------------------------- status


def _next_monthly(prog: Programme, count: int) -> dict[str, Any] | None:
    ahead = [r for r in prog.rules.checkin.monthly if r.count > count]
    if not ahead:
        return None
    rule = min(ahead, key=lambda r: r.count)
    return {"count": rule.count, "to_go": rule.count - count, "reward": reward_json(rule.reward)}


def _next_streak(prog: Programme, streak: int) -> dict[str, Any] | None:
    ahead = [r for r in prog.rules.checkin.streaks if r.days > streak]
    if not ahead:
        return None
    rule = min(ahead, key=lambda r: r.days)
    return {"days": rule.days, "to_go": rule.days - streak, "reward": reward_json(rule.reward)}


def _badges_held(conn: sa.Connection, prog: Programme, user_id: str) -> set[str]:
    r = loyalty_rewards.c
    return set(
        conn.execute(
            sa.select(r.badge).where(
                r.app_id == prog.app_id, r.user_id == user_id, r.kind == "badge"
            )
        ).scalars()
    )


def checkin_status(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> dict[str, Any]:
    """The member's check-in page at `now`: checked in today?, the current streak (one that
    ends today or yesterday; 0 otherwise), the longest streak, this month's check-in days, the
    next monthly and streak rewards, the badges, and the make-up cards left this month."""
    today = prog.day(now)
    c = checkins.c
    with engine.connect() as conn:
        known = find_member(conn, prog.app_id, user_id) is not None
        mine = (c.app_id == prog.app_id, c.user_id == user_id)
        recent = {
            row.day: row.streak
            for row in conn.execute(
                sa.select(c.day, c.streak).where(*mine, c.day >= today - timedelta(days=1))
            )
        }
        longest = conn.execute(sa.select(sa.func.max(c.streak)).where(*mine)).scalar()
        days = _month_days(conn, prog, user_id, today) if known else []
        held = _badges_held(conn, prog, user_id)
        made_up = _makeups_this_month(conn, prog, user_id, now) if known else 0
    streak = recent.get(today) or recent.get(today - timedelta(days=1)) or 0
    makeup = prog.rules.checkin.makeup
    return {
        "user_id": user_id,
        "today": today.isoformat(),
        "checked_in_today": today in recent,
        "streak": streak,
        "longest_streak": int(longest or 0),
        "month": today.strftime("%Y-%m"),
        "month_count": len(days),
        "month_days": [d.isoformat() for d in days],
        "points_per_checkin": prog.rules.checkin.points,
        "next_monthly": _next_monthly(prog, len(days)),
        # the next streak reward counted from tomorrow's check-in when today is not done yet
        "next_streak": _next_streak(prog, streak),
        "badges": [
            {"name": b.name, "zh": b.zh, "en": b.en, "streak": b.streak, "earned": b.name in held}
            for b in prog.rules.checkin.badges
        ],
        "makeup": {
            "enabled": makeup.enabled,
            "per_month": makeup.per_month,
            "used_this_month": made_up,
            "left_this_month": max(0, makeup.per_month - made_up) if makeup.enabled else 0,
            "max_days_back": makeup.max_days_back,
            "cost_points": makeup.cost_points,
        },
    }


def checkin_counts(engine: sa.Engine, prog: Programme, day: date) -> dict[str, Any]:
    """How many members checked in on app-local `day`, and how many of those were make-ups."""
    c = checkins.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.makeup, sa.func.count())
            .where(c.app_id == prog.app_id, c.day == day)
            .group_by(c.makeup)
        ).all()
    by_kind = {bool(makeup): int(n) for makeup, n in rows}
    return {
        "day": day.isoformat(),
        "checkins": sum(by_kind.values()),
        "makeups": by_kind.get(True, 0),
    }
