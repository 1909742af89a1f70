"""Levels and benefits: growth value (成长值) from spending, active days and shares; tiers it
earns; the periodic review that may lower a level.

Definitions (the playbook's `loyalty.levels`):

- **Growth** comes in entries, each once per entry key: `spend` gives ⌊fen × `per_yuan` / 100⌋
  (whole growth per yuan, rounded down), `active_day` gives `per_active_day` (one a local
  day), `share` gives `per_share` (at most `share_daily_cap` shares a local day count),
  `adjust` gives its amount (negative to correct, never below zero in total).
- **Window growth** is the growth of the last `review.window_days` app-local days, today
  included. The tier it **earns** is the highest whose `min_growth` it reaches.
- **Upgrade**: as soon as growth makes the window growth earn a higher tier than the member's,
  the member moves up to it (tiers may be skipped).
- **Review**: a member last reviewed `review.every_days` or more ago gets the tier its window
  growth earns, but at most `review.max_drop` levels below its current one. A review may also
  raise (when the playbook lowered a threshold since the last growth); it never lowers below
  what the window growth earns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.members import (
    Member,
    as_utc,
    find_member,
    insert_ignoring_conflicts,
    lock_member,
    update_member,
)
from liucun.loyalty.programme import Programme
from liucun.playbook.loyalty import Tier
from liucun.state.db import write_transaction
from liucun.state.tables import growth_entries, level_changes, loyalty_members

GROWTH_SOURCES = ("spend", "active_day", "share", "adjust")
REVIEW_BATCH = 500  # members read per query by the review; each is reviewed in its own write


@dataclass(frozen=True)
class LevelChange:
    user_id: str
    old_level: str
    new_level: str
    reason: str  # upgrade | review
    changed_at: datetime

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- time and tiers


def utc_start_of(prog: Programme, day: date) -> datetime:
    """The instant app-local `day` begins, in UTC (how the state store compares times)."""
    return as_utc(prog.start_of(day))


def utc_span(prog: Programme, first: date, last: date) -> tuple[datetime, datetime]:
    """The instants app-local days `first`..`last` cover: [start of first, start of the day
    after last), in UTC."""
    return utc_start_of(prog, first), utc_start_of(prog, last + timedelta(days=1))


def window_start(prog: Programme, now: datetime) -> datetime:
    """The first instant of the growth window: `window_days` app-local days ending today."""
    days = prog.rules.levels.review.window_days
    return utc_start_of(prog, prog.day(now) - timedelta(days=days - 1))


def tier_index(prog: Programme, level: str) -> int:
    """The position of tier `level` (0: the entry tier, also for a tier no longer defined)."""
    names = [t.name for t in prog.rules.levels.tiers]
    return names.index(level) if level in names else 0


def earned_index(prog: Programme, growth: int) -> int:
    """The highest tier whose `min_growth` `growth` reaches."""
    tiers = prog.rules.levels.tiers
    return max(i for i, t in enumerate(tiers) if growth >= t.min_growth)


def benefits_json(tier: Tier) -> dict[str, Any]:
    """What a tier gives its members."""
    return {
        "discount_percent": tier.discount_percent,
        "points_multiplier": tier.points_multiplier,
        "exclusive_service": tier.exclusive_service,
        "early_access": tier.early_access,
    }


def tier_json(tier: Tier) -> dict[str, Any]:
    return {"name": tier.name, "zh": tier.zh, "en": tier.en, "min_growth": tier.min_growth}


# --------------------------------------------------------------------------- growth


def spend_growth(prog: Programme, fen: int) -> int:
    """Growth for spending `fen`: ⌊fen × per_yuan / 100⌋, exact (no float rounding)."""
    per_yuan = Fraction(str(prog.rules.levels.growth.per_yuan))
    return math.floor(Fraction(fen) * per_yuan / 100)


def _counted_today(
    conn: sa.Connection, prog: Programme, user_id: str, source: str, now: datetime
) -> int:
    """Entries of `source` that gave growth to the member this app-local day."""
    g = growth_entries.c
    start, end = utc_span(prog, prog.day(now), prog.day(now))
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                g.app_id == prog.app_id,
                g.user_id == user_id,
                g.source == source,
                g.growth > 0,
                g.created_at >= start,
                g.created_at < end,
            )
        ).scalar_one()
    )


def _growth_of(
    conn: sa.Connection, prog: Programme, member: Member, source: str, amount: int, now: datetime
) -> int:
    rules = prog.rules.levels.growth
    if source == "spend":
        if amount < 0:
            raise ValueError("spend growth needs the amount spent in fen (≥ 0)")
        return spend_growth(prog, amount)
    if source == "active_day":
        seen = _counted_today(conn, prog, member.user_id, source, now)
        return rules.per_active_day if seen == 0 else 0
    if source == "share":
        seen = _counted_today(conn, prog, member.user_id, source, now)
        return rules.per_share if seen < rules.share_daily_cap else 0
    if source == "adjust":
        return max(amount, -member.growth)  # a correction never takes the total below zero
    raise ValueError(f"growth source must be one of {', '.join(GROWTH_SOURCES)}; got {source!r}")


def window_growth(conn: sa.Connection, prog: Programme, user_id: str, now: datetime) -> int:
    """The member's growth in the window ending at `now` (never below zero)."""
    g = growth_entries.c
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(g.growth), 0)).where(
            g.app_id == prog.app_id,
            g.user_id == user_id,
            g.created_at >= window_start(prog, now),
            g.created_at <= now,
        )
    ).scalar_one()
    return max(0, int(total))


def _record_change(
    conn: sa.Connection, prog: Programme, member: Member, new: str, reason: str, now: datetime
) -> LevelChange:
    change = LevelChange(member.user_id, member.level, new, reason, now)
    conn.execute(
        level_changes.insert().values(
            app_id=prog.app_id,
            user_id=member.user_id,
            old_level=member.level,
            new_level=new,
            reason=reason,
            changed_at=now,
        )
    )
    update_member(conn, member, level=new, level_since=now)
    return change


def _upgrade(
    conn: sa.Connection, prog: Programme, member: Member, now: datetime
) -> LevelChange | None:
    earned = earned_index(prog, window_growth(conn, prog, member.user_id, now))
    if earned <= tier_index(prog, member.level):
        return None
    return _record_change(conn, prog, member, prog.rules.levels.tiers[earned].name, "upgrade", now)


def add_growth(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    source: str,
    amount: int,
    entry_key: str,
    now: datetime,
) -> int:
    """Add the growth `source` gives to the (locked) member, once per `entry_key` (app-wide:
    put the user or the order in it), and upgrade the member at once if its window growth now
    earns a higher tier. `amount`: fen spent for `spend`, the growth for `adjust`; ignored for
    `active_day` and `share` (one entry is one day or one share). Returns the growth added
    (0: the key was seen before, or a daily cap held)."""
    growth = _growth_of(conn, prog, member, source, amount, now)
    row = {
        "app_id": prog.app_id,
        "entry_key": entry_key,
        "user_id": member.user_id,
        "source": source,
        "growth": growth,
        "created_at": now,
    }
    if not insert_ignoring_conflicts(conn, growth_entries, row):
        return 0
    if growth:
        update_member(conn, member, growth=member.growth + growth)
    if growth > 0:
        _upgrade(conn, prog, member, now)
    return growth


# --------------------------------------------------------------------------- review


def reviewed_level(prog: Programme, current: str, window: int) -> str:
    """The level a review gives: what `window` growth earns, at most `max_drop` below
    `current`."""
    now_at = tier_index(prog, current)
    earned = earned_index(prog, window)
    floor = max(0, now_at - prog.rules.levels.review.max_drop)
    return prog.rules.levels.tiers[max(earned, floor)].name


def _review_due_before(prog: Programme, now: datetime) -> datetime:
    return now - timedelta(days=prog.rules.levels.review.every_days)


def _review_one(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> LevelChange | None:
    with write_transaction(engine) as conn:
        member = lock_member(conn, prog, user_id, now)
        if member.level_reviewed_at > _review_due_before(prog, now):
            return None  # reviewed meanwhile (another server's run)
        new = reviewed_level(prog, member.level, window_growth(conn, prog, user_id, now))
        # a level the playbook no longer has counts as the entry tier, and is replaced
        change = None
        if new != member.level:
            change = _record_change(conn, prog, member, new, "review", now)
        update_member(conn, member, level_reviewed_at=now)
        return change


def _due_members(engine: sa.Engine, prog: Programme, now: datetime, after: str) -> list[str]:
    m = loyalty_members.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(m.user_id)
                .where(
                    m.app_id == prog.app_id,
                    m.level_reviewed_at <= _review_due_before(prog, now),
                    m.user_id > after,
                )
                .order_by(m.user_id)
                .limit(REVIEW_BATCH)
            ).scalars()
        )


def review_levels(engine: sa.Engine, prog: Programme, now: datetime) -> list[LevelChange]:
    """The periodic review: every member last reviewed `every_days` or more before `now` gets
    `reviewed_level`, each in its own write transaction with the member locked; returns the
    levels that changed. Safe to run again and beside the servers."""
    changes: list[LevelChange] = []
    after = ""
    while due := _due_members(engine, prog, now, after):
        for user_id in due:
            change = _review_one(engine, prog, user_id, now)
            if change is not None:
                changes.append(change)
        after = due[-1]
    return changes


# --------------------------------------------------------------------------- reading


def _next_review(prog: Programme, member: Member) -> date:
    days = prog.rules.levels.review.every_days
    return prog.day(member.level_reviewed_at + timedelta(days=days))


def level_status(engine: sa.Engine, prog: Programme, user_id: str, now: datetime) -> dict[str, Any]:
    """The member's level with its benefits, its growth (lifetime and in the window), the next
    tier and the window growth it still needs, the growth needed to keep the level at the next
    review, and that review's app-local day. A user the programme has not seen yet is at the
    entry tier with no growth."""
    tiers = prog.rules.levels.tiers
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user_id)
        window = window_growth(conn, prog, user_id, now) if member else 0
    at = tier_index(prog, member.level) if member else 0
    tier = tiers[at]
    following = tiers[at + 1] if at + 1 < len(tiers) else None
    return {
        "user_id": user_id,
        "level": {"name": tier.name, "zh": tier.zh, "en": tier.en},
        "benefits": benefits_json(tier),
        "growth": {
            "total": member.growth if member else 0,
            "in_window": window,
            "window_days": prog.rules.levels.review.window_days,
        },
        "next": None
        if following is None
        else {**tier_json(following), "growth_needed": max(0, following.min_growth - window)},
        "keep_needed": max(0, tier.min_growth - window),
        "level_since": member.level_since if member else None,
        "next_review": _next_review(prog, member) if member else None,
    }


def level_distribution(engine: sa.Engine, prog: Programme) -> list[dict[str, Any]]:
    """Members per tier of the playbook in force (a level no longer defined counts as the
    entry tier, which is what members at it get)."""
    m = loyalty_members.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.level, sa.func.count()).where(m.app_id == prog.app_id).group_by(m.level)
        ).all()
    counts = [0] * len(prog.rules.levels.tiers)
    for level, members in rows:
        counts[tier_index(prog, level)] += int(members)
    return [
        {**tier_json(t), "members": n} for t, n in zip(prog.rules.levels.tiers, counts, strict=True)
    ]
