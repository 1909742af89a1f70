"""Granting a playbook reward (points and/or a coupon) once per reward key, with a record of
what it gave: the one path by which check-ins, the ladder, tasks, the new-user pack, invites,
group buys and help-unlocks reward a member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.ledger import Entry, credit
from liucun.loyalty.members import Member, insert_ignoring_conflicts
from liucun.loyalty.programme import Programme
from liucun.playbook.loyalty import Reward
from liucun.state.tables import loyalty_rewards

REWARD_KINDS = (
    "checkin",
    "streak",
    "badge",
    "ladder",
    "task",
    "new_user",
    "invite",
    "group",
    "help",
)


@dataclass(frozen=True)
class Granted:
    reward_key: str
    kind: str
    points: int
    coupon: dict[str, Any] | None  # the issued coupon (coupons.coupon_json), if any
    badge: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "reward_key": self.reward_key,
            "kind": self.kind,
            "points": self.points,
            "coupon": self.coupon,
            "badge": self.badge,
        }


def grant_reward(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    reward: Reward,
    reward_key: str,
    kind: str,
    now: datetime,
    reason: str,
) -> Granted | None:
    """Give `reward` to the (locked) member unless `reward_key` was granted before (then
    None). A coupon that cannot be issued (its template's limit or budget reached) raises
    LoyaltyError before any points are given, so that `member` still matches its row when the
    caller undoes the reward alone (`grant_softly`)."""
    from liucun.loyalty.coupons import issue_coupon  # coupons reward through here too

    row = {
        "app_id": prog.app_id,
        "reward_key": reward_key,
        "user_id": member.user_id,
        "kind": kind,
        "points": reward.points,
        "coupon_id": None,
        "badge": None,
        "playbook_revision": prog.revision,
        "granted_at": now,
    }
    if not insert_ignoring_conflicts(conn, loyalty_rewards, row):
        return None
    coupon = None
    if reward.coupon:  # first: it is the part that may be refused
        coupon = issue_coupon(conn, prog, member, reward.coupon, reward_key, now)
        r = loyalty_rewards.c
        conn.execute(
            loyalty_rewards.update()
            .where(r.app_id == prog.app_id, r.reward_key == reward_key)
            .values(coupon_id=coupon["coupon_id"])
        )
    if reward.points:
        credit(conn, prog, member, reward.points, Entry(reward_key, rule=kind, reason=reason), now)
    return Granted(reward_key, kind, reward.points, coupon)


def grant_softly(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    reward: Reward,
    reward_key: str,
    kind: str,
    now: datetime,
    reason: str,
) -> tuple[Granted | None, str | None]:
    """`grant_reward` in a savepoint: a reward that cannot be given (its coupon sold out, say)
    is undone alone and reported by its code, instead of undoing the check-in, visit or event
    that earned it. Returns (what was granted, or None if granted before; the refusal code or
    None)."""
    try:
        with conn.begin_nested():
            return grant_reward(conn, prog, member, reward, reward_key, kind, now, reason), None
    except LoyaltyError as exc:
        return None, exc.code


def grant_badge(
    conn: sa.Connection, prog: Programme, member: Member, badge: str, now: datetime
) -> Granted | None:
    """Record `badge` for the member once (None if it had it)."""
    key = f"badge:{member.user_id}:{badge}"
    row = {
        "app_id": prog.app_id,
        "reward_key": key,
        "user_id": member.user_id,
        "kind": "badge",
        "points": 0,
        "coupon_id": None,
        "badge": badge,
        "playbook_revision": prog.revision,
        "granted_at": now,
    }
    if not insert_ignoring_conflicts(conn, loyalty_rewards, row):
        return None
    return Granted(key, "badge", 0, None, badge)
