"""The new-user pack (新人礼包): the playbook's `new_user_pack.rewards`, granted once to a
member in its first `new_user_pack.days` app-local days (day 1 is the day it joined).

Each reward is granted once per member under the reward key `new_user:<user_id>:<i>` (`i`
its position in the pack), so granting the pack again gives nothing twice.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.coupons import find_template, template_json
from liucun.loyalty.members import Member, as_utc, find_member
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import Granted, grant_softly
from liucun.state.tables import loyalty_rewards

KIND = "new_user"
REWARD_KEY_MAX = 200  # loyalty_rewards.reward_key


def pack_reward_key(user_id: str, index: int) -> str:
    """The reward key of the pack's `index`-th reward for `user_id`; a user id too long to fit
    the key is replaced by its digest."""
    key = f"{KIND}:{user_id}:{index}"
    if len(key) <= REWARD_KEY_MAX:
        return key
    return f"{KIND}:#{hashlib.sha256(user_id.encode()).hexdigest()}:{index}"


def pack_last_day(prog: Programme, joined_day: date) -> date:
    """The last app-local day of the pack for a member who joined on `joined_day`."""
    return joined_day + timedelta(days=prog.rules.new_user_pack.days - 1)


def within_pack_days(prog: Programme, joined_day: date, now: datetime) -> bool:
    """Whether `now` falls in the member's first `days` app-local days (day 1 = joined_day)."""
    return prog.day(now) <= pack_last_day(prog, joined_day)


def welcome_pack(
    conn: sa.Connection, prog: Programme, member: Member, now: datetime
) -> list[Granted]:
    """Grant the (locked) member the new-user pack if the playbook enables it and the member
    is within its days; what this call granted (nothing for rewards granted before).

    A reward whose coupon cannot be issued now (sold out, budget used up) is skipped, the rest
    granted: a new member's first request must not fail because a promotion ran out. It is
    not recorded, so a later call within the days tries it again."""
    pack = prog.rules.new_user_pack
    if not pack.enabled or not within_pack_days(prog, member.joined_day, now):
        return []
    granted = []
    for index, reward in enumerate(pack.rewards):
        key = pack_reward_key(member.user_id, index)
        done, _refused = grant_softly(conn, prog, member, reward, key, KIND, now, "new-user pack")
        if done is not None:
            granted.append(done)
    return granted


def pack_status(engine: sa.Engine, prog: Programme, user_id: str, now: datetime) -> dict[str, Any]:
    """The pack as the user sees it at `now`: its rewards, whether each was granted (and
    when, with the coupon's id), and whether the user is still within the pack's days. A user
    the programme has not seen yet would join today, so is within them."""
    pack = prog.rules.new_user_pack
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user_id)
        keys = [pack_reward_key(user_id, i) for i in range(len(pack.rewards))]
        r = loyalty_rewards.c
        rows = {
            row.reward_key: row
            for row in conn.execute(
                sa.select(r.reward_key, r.granted_at, r.coupon_id, r.points).where(
                    r.app_id == prog.app_id, r.reward_key.in_(keys)
                )
            )
        }
    joined = prog.day(now) if member is None else member.joined_day
    rewards = []
    for index, (key, reward) in enumerate(zip(keys, pack.rewards, strict=True)):
        row = rows.get(key)
        coupon = (
            None if reward.coupon is None else template_json(find_template(prog, reward.coupon))
        )
        rewards.append(
            {
                "index": index,
                "points": reward.points,
                "coupon": coupon,
                "granted": row is not None,
                "granted_at": None if row is None else as_utc(row.granted_at),
                "coupon_id": None if row is None else row.coupon_id,
            }
        )
    return {
        "enabled": pack.enabled,
        "days": pack.days,
        "joined_day": None if member is None else member.joined_day,
        "last_day": pack_last_day(prog, joined),
        "within_days": pack.enabled and within_pack_days(prog, joined, now),
        "rewards": rewards,
    }
