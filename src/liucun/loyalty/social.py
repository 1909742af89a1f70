"""Group buys (拼团) and help-unlocks (助力解锁): a goal of N people before a deadline.

Definitions (the playbook's `loyalty.group_buys` and `loyalty.help_unlocks`, each an offer of
`people` within `hours` and a `reward`):

- **Start**: a member opens a goal of an offer: `needed` = the offer's `people`, `deadline` =
  now + `hours`. In a group the owner is the first member (`joined` = 1); in a help-unlock the
  owner is helped and is not a helper (`joined` = 0). One open goal per owner and offer.
- **Join / help**: another user joins the group, or helps the owner, once. Refused: an unknown
  goal (`unknown_goal`, 404), helping one's own goal (`self_help`), joining or helping twice
  (`already_joined` / `already_helped`), a goal with all its people (`goal_full`), a goal
  failed or past its deadline (`goal_closed`).
- **Formed**: the join that brings `joined` to `needed` closes the goal (`formed`). A group
  rewards every member (owner included; key `group:{goal_id}:{user}`), a help-unlock rewards
  the owner (key `help:{goal_id}`), with the offer's reward in the playbook in force.
- **Failed**: a goal still open at its deadline fails (`close_expired_goals`, the daily jobs).
  For a group the result lists its members, whose payments the app's backend refunds or
  cancels: liucun does not move money.

Concurrency: `joined` only grows by a conditional UPDATE (`joined < needed`, still open, before
the deadline) checked by its row count, and the `social_members` key admits one join per user,
so concurrent joins never pass `needed`. Rewards are given after the forming join commits,
each member in its own write transaction with only that member locked (locking the other
members inside the joiner's transaction could break the sorted lock order). The reward keys
make this idempotent; a reward left ungiven by a crash in between is given by the next
`close_expired_goals` (which settles goals formed in the last `SETTLE_DAYS` days).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from liucun.loyalty.checkin import short_key
from liucun.loyalty.errors import LoyaltyError, not_found
from liucun.loyalty.members import Member, as_utc, insert_ignoring_conflicts, lock_member
from liucun.loyalty.operations import Outcome, run_once
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import grant_reward
from liucun.playbook.loyalty import SocialOffer
from liucun.state.db import write_transaction
from liucun.state.tables import loyalty_rewards, social_goals, social_members

Kind = Literal["group", "help"]
KINDS: tuple[Kind, ...] = ("group", "help")
GOAL_ID_MAX = 40
SETTLE_DAYS = 7  # formed goals whose rewards the close job checks and completes
CLOSE_BATCH = 500


# --------------------------------------------------------------------------- offers and keys


def offer_of(prog: Programme, kind: str, name: str) -> SocialOffer:
    """The playbook's group buy or help-unlock called `name`; 404 if it has none."""
    offers = prog.rules.group_buys if kind == "group" else prog.rules.help_unlocks
    found = next((o for o in offers if o.name == name), None)
    if found is None:
        if kind == "group":
            raise not_found("group buy", name, "拼团活动")
        raise not_found("help unlock", name, "助力活动")
    return found


def offer_json(prog: Programme, kind: str, name: str) -> dict[str, Any]:
    """The offer's texts and terms (a name only, if the playbook no longer has it)."""
    offers = prog.rules.group_buys if kind == "group" else prog.rules.help_unlocks
    offer = next((o for o in offers if o.name == name), None)
    if offer is None:
        return {"name": name, "zh": name, "en": name, "people": None, "hours": None}
    return {
        "name": offer.name,
        "zh": offer.zh,
        "en": offer.en,
        "people": offer.people,
        "hours": offer.hours,
        "reward": {"points": offer.reward.points, "coupon": offer.reward.coupon},
    }


def reward_key(kind: str, goal_id: str, user_id: str) -> str:
    """A group member's reward key, or the help-unlock owner's."""
    return short_key("group", goal_id, user_id) if kind == "group" else short_key("help", goal_id)


def _refused(code: str, message: str, zh: str, status: int = 409) -> LoyaltyError:
    return LoyaltyError(code, message, zh, status)


def _unknown_goal(goal_id: str) -> LoyaltyError:
    return _refused("unknown_goal", f"no goal {goal_id!r}", "活动不存在", 404)


# --------------------------------------------------------------------------- reading rows


def _goal(conn: sa.Connection, prog: Programme, goal_id: str, kind: str | None) -> Any:
    g = social_goals.c
    if not goal_id or len(goal_id) > GOAL_ID_MAX:
        raise _unknown_goal(goal_id)
    row = conn.execute(
        sa.select(social_goals).where(g.goal_id == goal_id, g.app_id == prog.app_id)
    ).first()
    if row is None or (kind is not None and row.kind != kind):
        raise _unknown_goal(goal_id)
    return row


def _members(conn: sa.Connection, goal_id: str) -> list[Any]:
    s = social_members.c
    return list(
        conn.execute(
            sa.select(s.user_id, s.joined_at)
            .where(s.goal_id == goal_id)
            .order_by(s.joined_at, s.user_id)
        )
    )


def _recipients(goal: Any, members: list[Any]) -> list[str]:
    """Who the formed goal rewards: every group member, or the help-unlock's owner."""
    return [m.user_id for m in members] if goal.kind == "group" else [goal.owner]


def _granted(conn: sa.Connection, prog: Programme, keys: list[str]) -> set[str]:
    r = loyalty_rewards.c
    query = sa.select(r.reward_key).where(r.app_id == prog.app_id, r.reward_key.in_(keys))
    return set(conn.execute(query).scalars()) if keys else set()


def effective_status(goal: Any, now: datetime) -> str:
    """open, formed or failed; an open goal past its deadline has failed, closed or not."""
    if goal.status == "open" and as_utc(goal.deadline) <= now:
        return "failed"
    return str(goal.status)


def _goal_json(conn: sa.Connection, prog: Programme, goal: Any, now: datetime) -> dict[str, Any]:
    members = _members(conn, goal.goal_id)
    keys = {u: reward_key(goal.kind, goal.goal_id, u) for u in _recipients(goal, members)}
    granted = _granted(conn, prog, list(keys.values()))
    return {
        "goal_id": goal.goal_id,
        "kind": goal.kind,
        "offer": offer_json(prog, goal.kind, goal.offer),
        "owner": goal.owner,
        "needed": goal.needed,
        "joined": goal.joined,
        "status": effective_status(goal, now),
        "created_at": as_utc(goal.created_at),
        "deadline": as_utc(goal.deadline),
        "closed_at": as_utc(goal.closed_at) if goal.closed_at else None,
        "members": [
            {
                "user_id": m.user_id,
                "joined_at": as_utc(m.joined_at),
                "rewarded": goal.kind == "group" and keys[m.user_id] in granted,
            }
            for m in members
        ],
        "owner_rewarded": keys.get(goal.owner) in granted,
    }


def goal_status(
    engine: sa.Engine, prog: Programme, goal_id: str, now: datetime, kind: str | None = None
) -> dict[str, Any]:
    """The goal, its members (group) or helpers (help) and who was rewarded; 404 for a goal
    of another app, or of the other kind when `kind` is given."""
    with engine.connect() as conn:
        return _goal_json(conn, prog, _goal(conn, prog, goal_id, kind), now)


# --------------------------------------------------------------------------- starting


def _open_goal_of(
    conn: sa.Connection, prog: Programme, kind: str, offer: str, owner: str, now: datetime
) -> str | None:
    g = social_goals.c
    return conn.execute(
        sa.select(g.goal_id).where(
            g.app_id == prog.app_id,
            g.owner == owner,
            g.kind == kind,
            g.offer == offer,
            g.status == "open",
            g.deadline > now,
        )
    ).scalar()


def start_goal(
    engine: sa.Engine,
    prog: Programme,
    kind: str,
    offer_name: str,
    owner: str,
    now: datetime,
    key: str,
) -> Outcome:
    """Open a goal of the offer `offer_name` for `owner`, once per idempotency `key`; the
    result is the goal (`goal_status`). Refused while the owner has one of that offer open
    (`goal_already_open`)."""
    if kind not in KINDS:
        raise ValueError(f"a goal is a group or a help, not {kind!r}")
    offer = offer_of(prog, kind, offer_name)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        running = _open_goal_of(conn, prog, kind, offer.name, member.user_id, now)
        if running is not None:
            raise _refused(
                "goal_already_open",
                f"you have this one open already: goal {running}",
                f"你已发起过该活动,尚未结束:{running}",
            )
        goal_id = secrets.token_hex(16)
        conn.execute(
            social_goals.insert().values(
                goal_id=goal_id,
                app_id=prog.app_id,
                kind=kind,
                offer=offer.name,
                owner=member.user_id,
                needed=offer.people,
                joined=1 if kind == "group" else 0,
                status="open",
                created_at=now,
                deadline=now + timedelta(hours=offer.hours),
                closed_at=None,
                playbook_revision=prog.revision,
            )
        )
        if kind == "group":  # the owner is the group's first member
            conn.execute(
                social_members.insert().values(
                    goal_id=goal_id, user_id=member.user_id, joined_at=now
                )
            )
        return goal_status_in(conn, prog, goal_id, now)

    request = {"kind": kind, "offer": offer.name}
    return run_once(engine, prog, owner, key, f"{kind}_start", request, now, work)


def goal_status_in(
    conn: sa.Connection, prog: Programme, goal_id: str, now: datetime
) -> dict[str, Any]:
    """`goal_status` inside a transaction (what a write answers with)."""
    return _goal_json(conn, prog, _goal(conn, prog, goal_id, None), now)


# --------------------------------------------------------------------------- joining


def _already(kind: str) -> LoyaltyError:
    if kind == "help":
        return _refused("already_helped", "you have helped with this already", "你已经助力过了")
    return _refused("already_joined", "you are in this group already", "你已经在这个团里了")


def _closed_or_full(goal: Any, now: datetime) -> LoyaltyError:
    """Why a goal takes nobody more: formed (full), or failed or past its deadline."""
    if effective_status(goal, now) == "formed" or goal.joined >= goal.needed:
        return _refused("goal_full", "this one has all the people it needs", "人数已满")
    return _refused("goal_closed", "this one has ended", "活动已结束")


def _is_member(conn: sa.Connection, goal_id: str, user_id: str) -> bool:
    s = social_members.c
    query = sa.select(s.user_id).where(s.goal_id == goal_id, s.user_id == user_id)
    return conn.execute(query).first() is not None


def _check_join(conn: sa.Connection, goal: Any, user_id: str, now: datetime) -> None:
    if goal.kind == "help" and goal.owner == user_id:
        raise _refused("self_help", "you cannot help yourself: ask a friend", "不能为自己助力")
    if _is_member(conn, goal.goal_id, user_id):
        raise _already(goal.kind)
    if effective_status(goal, now) != "open" or goal.joined >= goal.needed:
        raise _closed_or_full(goal, now)


def _count_in(conn: sa.Connection, goal_id: str, now: datetime) -> int | None:
    """Add one to `joined` if the goal still takes people; the new count, or None."""
    g = social_goals.c
    return conn.execute(
        social_goals.update()
        .where(
            g.goal_id == goal_id,
            g.joined < g.needed,
            g.status == "open",
            g.deadline > now,
        )
        .values(joined=g.joined + 1)
        .returning(g.joined)
    ).scalar()


def _form(conn: sa.Connection, goal_id: str, now: datetime) -> None:
    g = social_goals.c
    conn.execute(
        social_goals.update()
        .where(g.goal_id == goal_id, g.status == "open")
        .values(status="formed", closed_at=now)
    )


def join_goal(
    engine: sa.Engine,
    prog: Programme,
    goal_id: str,
    user_id: str,
    now: datetime,
    key: str,
    kind: str | None = None,
) -> Outcome:
    """Join the group, or help the owner, once per idempotency `key` (module docstring:
    refusals, concurrency). The join that completes the goal forms it and its rewards are
    given at once, after it commits. Answers with the goal as it is then; `kind`, when given,
    refuses a goal of the other kind as unknown."""

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        goal = _goal(conn, prog, goal_id, kind)
        _check_join(conn, goal, member.user_id, now)
        row = {"goal_id": goal.goal_id, "user_id": member.user_id, "joined_at": now}
        if not insert_ignoring_conflicts(conn, social_members, row):
            raise _already(goal.kind)
        joined = _count_in(conn, goal.goal_id, now)
        if joined is None:  # another join took the last place, or the goal ended, meanwhile
            raise _closed_or_full(_goal(conn, prog, goal_id, kind), now)
        if joined >= goal.needed:
            _form(conn, goal.goal_id, now)
        return goal_status_in(conn, prog, goal.goal_id, now)

    request = {"goal_id": goal_id, "kind": kind}
    outcome = run_once(engine, prog, user_id, key, "goal_join", request, now, work)
    if outcome.result["status"] != "formed":
        return outcome
    settle_goal(engine, prog, goal_id, now)
    return Outcome(goal_status(engine, prog, goal_id, now), outcome.replayed)


# --------------------------------------------------------------------------- rewarding


def _give(
    engine: sa.Engine, prog: Programme, goal: Any, offer: SocialOffer, user_id: str, now: datetime
) -> dict[str, Any]:
    key = reward_key(goal.kind, goal.goal_id, user_id)
    reason = f"{goal.kind} {goal.goal_id} formed ({offer.name})"
    try:
        with write_transaction(engine) as conn:
            member = lock_member(conn, prog, user_id, now)
            granted = grant_reward(conn, prog, member, offer.reward, key, goal.kind, now, reason)
    except LoyaltyError as exc:  # its coupon sold out, say: the others are still rewarded
        return {"user_id": user_id, "status": "unavailable", "code": exc.code, "reward": None}
    if granted is None:
        return {"user_id": user_id, "status": "already", "code": None, "reward": None}
    return {"user_id": user_id, "status": "granted", "code": None, "reward": granted.as_json()}


def settle_goal(
    engine: sa.Engine, prog: Programme, goal_id: str, now: datetime
) -> list[dict[str, Any]]:
    """Give a formed goal's rewards that were not given yet, each recipient in its own write
    transaction (idempotent by the reward keys); what each recipient got."""
    with engine.connect() as conn:
        goal = _goal(conn, prog, goal_id, None)
        members = _members(conn, goal_id)
    if goal.status != "formed":
        return []
    recipients = _recipients(goal, members)
    try:
        offer = offer_of(prog, goal.kind, goal.offer)
    except LoyaltyError as exc:  # the playbook dropped the offer since the goal started
        return [
            {"user_id": u, "status": "unavailable", "code": exc.code, "reward": None}
            for u in recipients
        ]
    return [_give(engine, prog, goal, offer, user_id, now) for user_id in recipients]


def _unsettled(conn: sa.Connection, prog: Programme, goal: Any) -> bool:
    keys = [
        reward_key(goal.kind, goal.goal_id, u)
        for u in _recipients(goal, _members(conn, goal.goal_id))
    ]
    return len(_granted(conn, prog, keys)) < len(keys)


def settle_formed_goals(engine: sa.Engine, prog: Programme, now: datetime) -> list[dict[str, Any]]:
    """Complete the rewards of goals formed in the last `SETTLE_DAYS` days that lack some
    (a server stopped between the forming join and its rewards); what was given."""
    g = social_goals.c
    with engine.connect() as conn:
        formed = conn.execute(
            sa.select(social_goals).where(
                g.app_id == prog.app_id,
                g.status == "formed",
                g.closed_at >= now - timedelta(days=SETTLE_DAYS),
            )
        ).all()
        due = [goal.goal_id for goal in formed if _unsettled(conn, prog, goal)]
    return [
        {"goal_id": goal_id, **given}
        for goal_id in due
        for given in settle_goal(engine, prog, goal_id, now)
        if given["status"] != "already"
    ]


# --------------------------------------------------------------------------- closing


def _failed_json(conn: sa.Connection, prog: Programme, goal_id: str) -> dict[str, Any]:
    goal = _goal(conn, prog, goal_id, None)
    members = [m.user_id for m in _members(conn, goal_id)]
    return {
        "goal_id": goal.goal_id,
        "kind": goal.kind,
        "offer": goal.offer,
        "owner": goal.owner,
        "needed": goal.needed,
        "joined": goal.joined,
        "deadline": as_utc(goal.deadline),
        "members": members,
        # the group's members paid (or will): the app's backend refunds or cancels them
        "refund": members if goal.kind == "group" else [],
    }


def _close_batch(engine: sa.Engine, prog: Programme, now: datetime) -> tuple[list[Any], int]:
    g = social_goals.c
    failed = []
    with write_transaction(engine) as conn:
        due = list(
            conn.execute(
                sa.select(g.goal_id)
                .where(g.app_id == prog.app_id, g.status == "open", g.deadline <= now)
                .order_by(g.deadline, g.goal_id)
                .limit(CLOSE_BATCH)
            ).scalars()
        )
        for goal_id in due:
            closed = conn.execute(
                social_goals.update()
                .where(g.goal_id == goal_id, g.status == "open", g.deadline <= now)
                .values(status="failed", closed_at=now)
            ).rowcount
            if closed:  # a join may have formed it meanwhile
                failed.append(_failed_json(conn, prog, goal_id))
    return failed, len(due)


def close_expired_goals(engine: sa.Engine, prog: Programme, now: datetime) -> list[dict[str, Any]]:
    """Goals still open at their deadline fail; the failed goals, each with the members a
    group's backend must refund or cancel (liucun moves no money). Also completes the rewards
    of recently formed goals (`settle_formed_goals`). Safe to run again and beside servers."""
    failed: list[dict[str, Any]] = []
    while True:
        batch, seen = _close_batch(engine, prog, now)
        failed += batch
        if seen < CLOSE_BATCH:
            break
    settle_formed_goals(engine, prog, now)
    return failed
