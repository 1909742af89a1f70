"""Invites (邀请有礼): a new user accepts a member's invite code; when the invitee first visits
or first pays (`invites.reward_on`), both sides get their reward.

Definitions (the playbook's `loyalty.invites`):

- Every member has an `invite_code`. Accepting binds the invitee to the code's owner, once:
  an invitee has one inviter for good.
- Refused: invites disabled (`invites_disabled`, 403); a code no member has
  (`unknown_invite_code`, 404); one's own code (`self_invite`); the code of someone one
  invited, directly or down the chain (`mutual_invite`: invites stay a tree); already bound
  (`already_invited`); an invitee whose first app-local day was more than `invitee_max_days`
  days before today, or who has paid an order already (`not_a_new_user`); an invitee seen on
  a device the inviter was seen on (`same_device`: the device sent with the accept or any
  `X-Device-Id` recorded for either member).
- Rewards: `first_visit` → at once when the invite is accepted; `first_order` → when the
  invitee's first paid order arrives (`on_first_order`). The invitee gets `invitee`, the
  inviter `inviter`, each once (reward keys `invite:{invitee}:invitee` / `:inviter`). An
  inviter is rewarded for at most `monthly_limit` invites an app-local month; beyond it the
  invitee is still rewarded and the inviter is not. A reward that cannot be given (its coupon
  sold out) is reported and not retried. An invite accepted before the playbook switched
  `reward_on` or disabled invites is still rewarded at the invitee's first order.

Locking: accepting locks both members in sorted user-id order (`run_once(also_lock=...)`).
`on_first_order` runs in the caller's transaction, which holds the invitee, and then locks the
inviter: out of sorted order when the inviter's id sorts first. Why this does not deadlock:
a deadlock needs a cycle of transactions each holding a member the next waits for. An
`on_first_order` waits only from an invitee up to its inviter, and invites form a tree
(`mutual_invite`), so these waits alone make no cycle. The other two-member transactions are
accepts; one that holds this inviter and waits for this invitee pairs the two, so it is this
invitee accepting again (`already_invited`) or the inviter accepting a code down its own tree
(`mutual_invite`), both refused before any lock from the committed invite that
`on_first_order` read. Only an accept that read before that invite committed and locks after
it can still meet `on_first_order`: PostgreSQL then aborts one of the two (deadlock detected),
nothing half-done is committed, and the event or the request is retried. SQLite runs one
writer at a time (BEGIN IMMEDIATE) and cannot deadlock. Group and help rewards lock one member
per transaction. Rows that are not members (budget rows, coupon stock) locked by the caller
before `on_first_order` can meet the inviter's own transactions the same way; the reactions
step runs a transaction PostgreSQL picked as a deadlock's victim again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.checkin import short_key
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.levels import utc_span
from liucun.loyalty.members import (
    INVITE_CODE_LENGTH,
    Member,
    as_utc,
    check_user_id,
    find_member,
    insert_ignoring_conflicts,
    lock_member,
)
from liucun.loyalty.operations import Outcome, check_key, run_once
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import grant_softly
from liucun.state.db import write_transaction
from liucun.state.tables import (
    invites,
    loyalty_members,
    loyalty_operations,
    loyalty_rewards,
    member_devices,
)

DEVICE_ID_MAX = 200
INVITEES_SHOWN = 100
CHAIN_MAX = 1000  # inviters walked up at most (real chains are a few long)


def check_device_id(device_id: str) -> str:
    if not device_id or len(device_id) > DEVICE_ID_MAX or device_id.strip() != device_id:
        raise LoyaltyError(
            "bad_device_id",
            f"device ids are 1–{DEVICE_ID_MAX} characters without surrounding spaces",
            f"设备 ID 须为 1–{DEVICE_ID_MAX} 个字符,且首尾不能有空格",
            status=422,
        )
    return device_id


def record_device(conn: sa.Connection, prog: Programme, member: Member, device_id: str) -> bool:
    """Note that the (locked) member was seen on `device_id`; True if it is new for it."""
    row = {
        "app_id": prog.app_id,
        "user_id": member.user_id,
        "device_id": check_device_id(device_id),
    }
    return insert_ignoring_conflicts(conn, member_devices, row)


def note_device(
    engine: sa.Engine, prog: Programme, user_id: str, device_id: str, now: datetime
) -> bool:
    """Record that `user_id` was seen on `device_id` (a client's `X-Device-Id`); a pair seen
    before costs one read and no write. True if it is new."""
    check_device_id(device_id)
    d = member_devices.c
    seen = sa.select(d.device_id).where(
        d.app_id == prog.app_id, d.user_id == user_id, d.device_id == device_id
    )
    with engine.connect() as conn:
        if conn.execute(seen).first() is not None:
            return False
    with write_transaction(engine) as conn:
        return record_device(conn, prog, lock_member(conn, prog, user_id, now), device_id)


def invitee_key(invitee: str) -> str:
    return short_key("invite", invitee, "invitee")


def inviter_key(invitee: str) -> str:
    return short_key("invite", invitee, "inviter")


# --------------------------------------------------------------------------- refusals


def _refused(code: str, message: str, zh: str, status: int = 409) -> LoyaltyError:
    return LoyaltyError(code, message, zh, status)


def _owner_of_code(conn: sa.Connection, prog: Programme, code: str) -> str | None:
    m = loyalty_members.c
    normal = code.strip().upper()  # codes are read aloud and typed: case does not matter
    if not normal or len(normal) > INVITE_CODE_LENGTH * 2:
        return None
    return conn.execute(
        sa.select(m.user_id).where(m.app_id == prog.app_id, m.invite_code == normal)
    ).scalar()


def _inviter_of(conn: sa.Connection, prog: Programme, invitee: str) -> str | None:
    i = invites.c
    return conn.execute(
        sa.select(i.inviter).where(i.app_id == prog.app_id, i.invitee == invitee)
    ).scalar()


def _check_pair(conn: sa.Connection, prog: Programme, invitee: str, inviter: str) -> None:
    """The refusals that need no lock; checked again under the locks."""
    if inviter == invitee:
        raise _refused(
            "self_invite", "you cannot accept your own invite code", "不能使用自己的邀请码"
        )
    if _inviter_of(conn, prog, invitee) is not None:
        raise _refused("already_invited", "you have accepted an invite already", "你已接受过邀请")
    if invitee in _chain_above(conn, prog, inviter):
        raise _refused(
            "mutual_invite",
            "you invited this member (or whoever invited them): you cannot accept their code",
            "对方是你(或你邀请的好友)邀请来的,不能使用其邀请码",
        )


def _chain_above(conn: sa.Connection, prog: Programme, user_id: str) -> set[str]:
    """Who invited `user_id`, who invited that one, and so on: refusing an invitee found here
    keeps invites a forest (no cycles), which `on_first_order`'s locking relies on."""
    above: set[str] = set()
    current = _inviter_of(conn, prog, user_id)
    while current is not None and current not in above and len(above) < CHAIN_MAX:
        above.add(current)
        current = _inviter_of(conn, prog, current)
    return above


def _check_new(prog: Programme, invitee: Member, now: datetime) -> None:
    days = (prog.day(now) - invitee.joined_day).days
    limit = prog.rules.invites.invitee_max_days
    if days > limit:
        raise _refused(
            "not_a_new_user",
            f"invites are for new users: you joined {days} days ago (at most {limit})",
            f"邀请仅限新用户:你已加入 {days} 天(上限 {limit} 天)",
        )
    if invitee.paid_orders > 0:
        raise _refused(
            "not_a_new_user",
            "invites are for new users: you have ordered already",
            "邀请仅限新用户:你已下过单",
        )


def _devices(conn: sa.Connection, prog: Programme, user_id: str) -> set[str]:
    d = member_devices.c
    query = sa.select(d.device_id).where(d.app_id == prog.app_id, d.user_id == user_id)
    return set(conn.execute(query).scalars())


def _check_devices(conn: sa.Connection, prog: Programme, invitee: str, inviter: str) -> None:
    if _devices(conn, prog, invitee) & _devices(conn, prog, inviter):
        raise _refused(
            "same_device",
            "this device was used by the member who invited you: invites are between people",
            "该设备已被邀请人使用过:邀请须在不同的人之间进行",
        )


def _check_enabled(prog: Programme) -> None:
    if not prog.rules.invites.enabled:
        raise _refused("invites_disabled", "invites are switched off", "邀请活动已关闭", 403)


# --------------------------------------------------------------------------- rewards


def inviter_rewards_in_month(
    conn: sa.Connection, prog: Programme, inviter: str, now: datetime
) -> int:
    """Invites the member was rewarded for as inviter in the app-local month of `now`: its
    invite rewards other than the one it got as an invitee."""
    r = loyalty_rewards.c
    start, end = utc_span(prog, *prog.month_bounds(now))
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                r.app_id == prog.app_id,
                r.user_id == inviter,
                r.kind == "invite",
                r.reward_key != invitee_key(inviter),
                r.granted_at >= start,
                r.granted_at < end,
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class Side:
    """What one side of an invite got: `granted`, `already` (granted before), `monthly_limit`
    (the inviter's limit this month was reached) or `unavailable` (`code` says why)."""

    status: str
    reward: dict[str, Any] | None = None
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "reward": self.reward, "code": self.code}


def _give(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    side: str,
    invitee: str,
    now: datetime,
) -> Side:
    rules = prog.rules.invites
    reward = rules.inviter if side == "inviter" else rules.invitee
    key = inviter_key(invitee) if side == "inviter" else invitee_key(invitee)
    reason = f"invite of {invitee}: {side} reward"
    granted, refused = grant_softly(conn, prog, member, reward, key, "invite", now, reason)
    if refused is not None:
        return Side("unavailable", code=refused)
    return Side("already") if granted is None else Side("granted", granted.as_json())


def _reward_both(
    conn: sa.Connection, prog: Programme, inviter: Member, invitee: Member, now: datetime
) -> dict[str, Any]:
    """Give both sides their reward (both members locked) and mark the invite rewarded."""
    got = {"invitee": _give(conn, prog, invitee, "invitee", invitee.user_id, now)}
    already = _was_granted(conn, prog, inviter_key(invitee.user_id))
    if already or inviter_rewards_in_month(conn, prog, inviter.user_id, now) < (
        prog.rules.invites.monthly_limit
    ):
        got["inviter"] = _give(conn, prog, inviter, "inviter", invitee.user_id, now)
    else:
        got["inviter"] = Side("monthly_limit")
    i = invites.c
    conn.execute(
        invites.update()
        .where(i.app_id == prog.app_id, i.invitee == invitee.user_id, i.rewarded_at.is_(None))
        .values(rewarded_at=now)
    )
    return {side: outcome.as_json() for side, outcome in got.items()}


def _was_granted(conn: sa.Connection, prog: Programme, key: str) -> bool:
    r = loyalty_rewards.c
    query = sa.select(r.reward_key).where(r.app_id == prog.app_id, r.reward_key == key)
    return conn.execute(query).first() is not None


# --------------------------------------------------------------------------- accepting


def accept_invite(
    engine: sa.Engine,
    prog: Programme,
    invitee: str,
    code: str,
    device_id: str | None,
    now: datetime,
    key: str,
) -> Outcome:
    """Bind `invitee` to the member whose invite code `code` is, once per idempotency `key`
    (module docstring: refusals, rewards, locking). `device_id`, when given, is recorded as
    the invitee's and checked against the inviter's devices. With `reward_on: first_visit`
    both sides are rewarded now."""
    check_key(key)
    check_user_id(invitee)
    if device_id is not None:
        check_device_id(device_id)
    _check_enabled(prog)
    with engine.connect() as conn:
        inviter = _owner_of_code(conn, prog, code)
    if inviter is None:
        raise _refused(
            "unknown_invite_code", f"no member has the invite code {code!r}", "邀请码不存在", 404
        )
    request = {"code": code.strip().upper(), "device_id": device_id}

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        inviter_member = lock_member(conn, prog, inviter, now)  # locked already: no wait
        _check_pair(conn, prog, member.user_id, inviter)
        _check_new(prog, member, now)
        if device_id is not None:
            record_device(conn, prog, member, device_id)
        _check_devices(conn, prog, member.user_id, inviter)
        conn.execute(
            invites.insert().values(
                app_id=prog.app_id,
                invitee=member.user_id,
                inviter=inviter,
                device_id=device_id,
                accepted_at=now,
                rewarded_at=None,
            )
        )
        rewards = None
        if prog.rules.invites.reward_on == "first_visit":
            rewards = _reward_both(conn, prog, inviter_member, member, now)
        return {
            "invitee": member.user_id,
            "inviter": inviter,
            "accepted_at": now,
            "reward_on": prog.rules.invites.reward_on,
            "rewards": rewards,
        }

    with engine.connect() as conn:
        if not _key_used(conn, prog, key):  # a retry answers as the first time, below
            # the refusals that need no lock, before locking: the module docstring says why
            _check_pair(conn, prog, invitee, inviter)
    return run_once(
        engine, prog, invitee, key, "invite_accept", request, now, work, also_lock=(inviter,)
    )


def _key_used(conn: sa.Connection, prog: Programme, key: str) -> bool:
    o = loyalty_operations.c
    query = sa.select(o.user_id).where(o.app_id == prog.app_id, o.idempotency_key == key)
    return conn.execute(query).first() is not None


def on_first_order(
    conn: sa.Connection, prog: Programme, invitee: Member, now: datetime
) -> dict[str, Any] | None:
    """The (locked) invitee's first paid order arrived: if it accepted an invite not yet
    rewarded, reward both sides now (the inviter is locked here; see the module docstring on
    why this cannot deadlock but in one rare race that PostgreSQL resolves). Call it in the
    transaction that records the order. Returns what each side got, or None."""
    i = invites.c
    inviter = conn.execute(
        sa.select(i.inviter).where(
            i.app_id == prog.app_id, i.invitee == invitee.user_id, i.rewarded_at.is_(None)
        )
    ).scalar()
    if inviter is None:
        return None
    inviter_member = lock_member(conn, prog, inviter, now)
    return _reward_both(conn, prog, inviter_member, invitee, now)


# --------------------------------------------------------------------------- reading


def _member_for_code(engine: sa.Engine, prog: Programme, user_id: str, now: datetime) -> Member:
    """The member, made now if new: a user needs a code to share before anything else."""
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user_id)
    if member is not None:
        return member
    with write_transaction(engine) as conn:
        return lock_member(conn, prog, user_id, now)


def _granted_keys(conn: sa.Connection, prog: Programme, keys: list[str]) -> set[str]:
    r = loyalty_rewards.c
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        query = sa.select(r.reward_key).where(r.app_id == prog.app_id, r.reward_key.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def _invitees(conn: sa.Connection, prog: Programme, inviter: str) -> list[dict[str, Any]]:
    i = invites.c
    rows = conn.execute(
        sa.select(i.invitee, i.accepted_at, i.rewarded_at)
        .where(i.app_id == prog.app_id, i.inviter == inviter)
        .order_by(i.accepted_at.desc(), i.invitee)
        .limit(INVITEES_SHOWN)
    ).all()
    keys = [k for row in rows for k in (inviter_key(row.invitee), invitee_key(row.invitee))]
    granted = _granted_keys(conn, prog, keys)
    return [
        {
            "user_id": row.invitee,
            "accepted_at": as_utc(row.accepted_at),
            "rewarded_at": as_utc(row.rewarded_at) if row.rewarded_at else None,
            "inviter_rewarded": inviter_key(row.invitee) in granted,
            "invitee_rewarded": invitee_key(row.invitee) in granted,
        }
        for row in rows
    ]


def _invited_by(conn: sa.Connection, prog: Programme, invitee: str) -> dict[str, Any] | None:
    i = invites.c
    row = conn.execute(
        sa.select(i.inviter, i.accepted_at, i.rewarded_at).where(
            i.app_id == prog.app_id, i.invitee == invitee
        )
    ).first()
    if row is None:
        return None
    return {
        "user_id": row.inviter,
        "accepted_at": as_utc(row.accepted_at),
        "rewarded_at": as_utc(row.rewarded_at) if row.rewarded_at else None,
        "rewarded": _was_granted(conn, prog, invitee_key(invitee)),
    }


def invite_status(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> dict[str, Any]:
    """The member's invite code (the first call makes the user a member, to have one), who
    invited it, its invitees (newest first, at most 100) with whether each side was rewarded,
    and the invites it was rewarded for this app-local month against the monthly limit."""
    member = _member_for_code(engine, prog, user_id, now)
    i = invites.c
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.count()).where(i.app_id == prog.app_id, i.inviter == user_id)
        ).scalar_one()
        return {
            "user_id": user_id,
            "code": member.invite_code,
            "enabled": prog.rules.invites.enabled,
            "reward_on": prog.rules.invites.reward_on,
            "invited_by": _invited_by(conn, prog, user_id),
            "invitees": _invitees(conn, prog, user_id),
            "invitees_total": int(total),
            "rewarded_this_month": inviter_rewards_in_month(conn, prog, user_id, now),
            "monthly_limit": prog.rules.invites.monthly_limit,
        }
