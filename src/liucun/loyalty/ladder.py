"""The monthly ladder (月活权益阶梯): rewards for the n-th visit of the app-local month.

Definitions (`loyalty.ladder` in the playbook):
- a visit is an event named in `visit_events` (default `app_open`), counted once per event id;
- with `counts: visit_days` (the default) the month's progress is the number of app-local
  days with a visit, so reopening the app on one day does not climb; with `counts: visits`
  it is the number of visits;
- when the progress reaches a step's `visit`, the step's reward is granted, once per member
  and month; a new app-local month starts from zero (the progress only counts that month's
  visits, so nothing is reset by a job);
- the home page shows a banner (the next step with the progress, or the last step reached)
  and a popup on the member's first visit of the month: the popup is on while the month's
  progress is exactly 1 (with `visit_days`, the whole first visit day); the client hides it
  once shown.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.checkin import Grants, reward_json, short_key
from liucun.loyalty.members import Member, insert_ignoring_conflicts
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import grant_softly
from liucun.playbook.loyalty import LadderStep, Reward
from liucun.state.tables import loyalty_rewards, visit_days


def record_visit(conn: sa.Connection, prog: Programme, member: Member, day: date) -> int:
    """Count one visit of the (locked) member on app-local `day`; the day's visits now."""
    row = {"app_id": prog.app_id, "user_id": member.user_id, "day": day, "visits": 1}
    if insert_ignoring_conflicts(conn, visit_days, row):
        return 1
    v = visit_days.c
    where = (v.app_id == prog.app_id, v.user_id == member.user_id, v.day == day)
    conn.execute(visit_days.update().where(*where).values(visits=v.visits + 1))
    return int(conn.execute(sa.select(v.visits).where(*where)).scalar_one())


def _month_range(day: date) -> tuple[date, date]:
    """The first day of `day`'s month and the first day of the next."""
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def month_progress(conn: sa.Connection, prog: Programme, user_id: str, day: date) -> int:
    """The member's ladder progress in `day`'s month: visit days or visits, per `counts`."""
    first, following = _month_range(day)
    v = visit_days.c
    measure = sa.func.count() if prog.rules.ladder.counts == "visit_days" else sa.func.sum(v.visits)
    total = conn.execute(
        sa.select(sa.func.coalesce(measure, 0)).where(
            v.app_id == prog.app_id, v.user_id == user_id, v.day >= first, v.day < following
        )
    ).scalar_one()
    return int(total)


def _step_key(user_id: str, month: str, step: LadderStep) -> str:
    return short_key("ladder", user_id, month, step.visit)


def climb(conn: sa.Connection, prog: Programme, member: Member, day: date, now: datetime) -> Grants:
    """Grant the steps the (locked) member's progress in `day`'s month has reached and not
    yet been given (each once a month)."""
    grants = Grants()
    ladder = prog.rules.ladder
    if not ladder.enabled:
        return grants
    count = month_progress(conn, prog, member.user_id, day)
    month = day.strftime("%Y-%m")
    for step in ladder.steps:
        if count >= step.visit:
            key = _step_key(member.user_id, month, step)
            reason = f"visit {step.visit} of {month}"
            grants.add(
                grant_softly(conn, prog, member, step.reward, key, "ladder", now, reason), key
            )
    return grants


# --------------------------------------------------------------------------- home page


def reward_text(prog: Programme, reward: Reward) -> tuple[str, str]:
    """A reward in words (zh, en): `100 积分`, the coupon's name, or both."""
    zh: list[str] = []
    en: list[str] = []
    if reward.points:
        zh.append(f"{reward.points} 积分")
        en.append(f"{reward.points} points")
    if reward.coupon:
        template = prog.rules.template(reward.coupon)
        zh.append(template.zh if template else reward.coupon)
        en.append(template.en if template else reward.coupon)
    return "和".join(zh), " and ".join(en)


def _times(n: int) -> str:
    return f"{n} visit" if n == 1 else f"{n} visits"


def banner(prog: Programme, count: int) -> dict[str, str] | None:
    """The ladder's line on the home page: the progress and the next step's reward, or the
    last step reached when all are."""
    ladder = prog.rules.ladder
    if not ladder.enabled:
        return None
    upcoming = next((s for s in ladder.steps if s.visit > count), None)
    if upcoming is None:
        last = ladder.steps[-1]
        return {
            "zh": f"本月已访问 {count} 次,已达成:{last.zh}",
            "en": f"{_times(count)} this month: reached. {last.en}",
        }
    zh, en = reward_text(prog, upcoming.reward)
    to_go = upcoming.visit - count
    gap = " " if zh[:1].isdigit() else ""
    return {
        "zh": f"本月已访问 {count} 次,再访问 {to_go} 次领{gap}{zh}",
        "en": f"{_times(count)} this month; {to_go} more for {en}",
    }


def ladder_progress(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> dict[str, Any]:
    """The member's ladder in the app-local month of `now`: the progress, each step (reached,
    granted), the next step and the visits to go, the banner and whether to pop up the
    month's benefits (progress exactly 1: the first visit of the month)."""
    ladder = prog.rules.ladder
    today = prog.day(now)
    month = today.strftime("%Y-%m")
    keys = {step.visit: _step_key(user_id, month, step) for step in ladder.steps}
    r = loyalty_rewards.c
    with engine.connect() as conn:
        count = month_progress(conn, prog, user_id, today)
        granted = set(
            conn.execute(
                sa.select(r.reward_key).where(
                    r.app_id == prog.app_id, r.reward_key.in_(list(keys.values()))
                )
            ).scalars()
        )
    upcoming = next((s for s in ladder.steps if s.visit > count), None)
    return {
        "user_id": user_id,
        "enabled": ladder.enabled,
        "month": month,
        "counts": ladder.counts,
        "count": count,
        "steps": [
            {
                "visit": step.visit,
                "zh": step.zh,
                "en": step.en,
                "reward": reward_json(step.reward),
                "reached": count >= step.visit,
                "granted": keys[step.visit] in granted,
            }
            for step in ladder.steps
        ],
        "next_step": upcoming.visit if upcoming else None,
        "to_go": upcoming.visit - count if upcoming else 0,
        "banner": banner(prog, count),
        "popup": ladder.enabled and count == 1,
    }
