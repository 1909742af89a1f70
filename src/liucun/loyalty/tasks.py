"""Daily tasks (每日任务): do something `count` times in an app-local day for a reward.

Definitions (`loyalty.tasks` in the playbook): a task counts the member's events named by its
`event`, each event id once, on the app-local day of the event; when the day's count reaches
`count`, the task's reward is granted, once per member, task and day. A new day starts at
zero.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.checkin import Grants, reward_json, short_key
from liucun.loyalty.members import Member, insert_ignoring_conflicts
from liucun.loyalty.programme import Programme
from liucun.loyalty.rewards import grant_softly
from liucun.playbook.loyalty import DailyTask
from liucun.state.tables import counted_events, loyalty_rewards


def task_counter(task: DailyTask) -> str:
    return f"task:{task.name}"


def task_key(user_id: str, day: date, task: DailyTask) -> str:
    return short_key("task", user_id, day.isoformat(), task.name)


def done_on(conn: sa.Connection, prog: Programme, user_id: str, day: date, counter: str) -> int:
    """The member's events counted by `counter` on app-local `day`."""
    c = counted_events.c
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                c.app_id == prog.app_id,
                c.user_id == user_id,
                c.counter == counter,
                c.day == day,
            )
        ).scalar_one()
    )


def count_task_event(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    task: DailyTask,
    event_id: str,
    day: date,
    now: datetime,
) -> Grants | None:
    """Count event `event_id` (on app-local `day`) towards `task` for the (locked) member and
    grant the reward when the day's count reaches the task's. None when the event was counted
    before (nothing changes)."""
    row = {
        "app_id": prog.app_id,
        "event_id": event_id,
        "counter": task_counter(task),
        "user_id": member.user_id,
        "day": day,
    }
    if not insert_ignoring_conflicts(conn, counted_events, row):
        return None
    grants = Grants()
    if done_on(conn, prog, member.user_id, day, task_counter(task)) >= task.count:
        key = task_key(member.user_id, day, task)
        reason = f"task {task.name} on {day}"
        grants.add(grant_softly(conn, prog, member, task.reward, key, "task", now, reason), key)
    return grants


def tasks_today(engine: sa.Engine, prog: Programme, user_id: str, now: datetime) -> dict[str, Any]:
    """Today's (app-local) tasks for the member: each with its progress (capped at its count),
    whether it is done and whether its reward was granted."""
    today = prog.day(now)
    keys = {t.name: task_key(user_id, today, t) for t in prog.rules.tasks}
    r = loyalty_rewards.c
    with engine.connect() as conn:
        progress = {
            t.name: done_on(conn, prog, user_id, today, task_counter(t)) for t in prog.rules.tasks
        }
        granted = set(
            conn.execute(
                sa.select(r.reward_key).where(
                    r.app_id == prog.app_id, r.reward_key.in_(list(keys.values()))
                )
            ).scalars()
        )
    return {
        "user_id": user_id,
        "day": today.isoformat(),
        "tasks": [
            {
                "name": t.name,
                "zh": t.zh,
                "en": t.en,
                "event": t.event,
                "count": t.count,
                "progress": min(progress[t.name], t.count),
                "done": progress[t.name] >= t.count,
                "granted": keys[t.name] in granted,
                "reward": reward_json(t.reward),
            }
            for t in prog.rules.tasks
        ],
    }
