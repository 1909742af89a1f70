"""Leaderboards: members ranked by check-ins or by points earned in the app-local week or month.

Definitions:

- **Period**: `week` is the app-local Monday-to-Sunday week containing `now`; `month` is the
  app-local calendar month containing `now`. Times are cut at local midnight
  (`Programme.start_of`), so an award at 23:59 Sunday local time counts in that week.
- **checkins**: check-in rows whose app-local `day` falls in the period (a make-up check-in
  counts on the day it makes up).
- **points_earned**: the points of journal rows of kind `earn` credited to the member, made
  in the period. Spends, expiries, reversals and manual adjustments do not count.
- **Rank**: standard competition ranking — 1 + the members with a strictly higher value, so
  ties share a rank and the next rank skips (1, 2, 2, 4). The board lists the first
  `leaderboards.size` members by value, ties in user-id order (bytewise, the same on every
  store); a member with nothing in the period is not ranked.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.levels import utc_span
from liucun.loyalty.programme import Programme
from liucun.state.tables import checkins, points_journal

Period = Literal["week", "month"]
PERIODS: tuple[Period, ...] = ("week", "month")


def period_days(prog: Programme, period: Period, now: datetime) -> tuple[date, date]:
    """The first and last app-local days of the `period` containing `now`."""
    if period == "month":
        return prog.month_bounds(now)
    today = prog.day(now)
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


def _values(prog: Programme, metric: str, first: date, last: date) -> sa.Subquery:
    """(user_id, value) of every member with something in the period."""
    if metric == "checkins":
        c = checkins.c
        return (
            sa.select(c.user_id, sa.func.count().label("value"))
            .where(c.app_id == prog.app_id, c.day >= first, c.day <= last)
            .group_by(c.user_id)
            .subquery()
        )
    j = points_journal.c
    start, end = utc_span(prog, first, last)
    return (
        sa.select(j.user_id, sa.func.sum(j.points).label("value"))
        .where(
            j.app_id == prog.app_id,
            j.kind == "earn",
            j.credit == "member",
            j.created_at >= start,
            j.created_at < end,
        )
        .group_by(j.user_id)
        .subquery()
    )


def _bytewise(conn: sa.Connection, column: Any) -> Any:
    # PostgreSQL sorts text by the database's locale; "C" is bytewise, as SQLite and Python do
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _check_metric(prog: Programme, metric: str) -> None:
    if metric not in prog.rules.leaderboards.metrics:
        raise LoyaltyError(
            "unknown_leaderboard",
            f"no leaderboard {metric!r}: the playbook's leaderboards.metrics are "
            f"{', '.join(prog.rules.leaderboards.metrics)}",
            f"没有排行榜 {metric!r}",
            status=404,
        )


def _own(conn: sa.Connection, values: sa.Subquery, user_id: str) -> dict[str, Any]:
    mine = conn.execute(sa.select(values.c.value).where(values.c.user_id == user_id)).scalar()
    if mine is None:
        return {"user_id": user_id, "rank": None, "value": 0}
    above = conn.execute(
        sa.select(sa.func.count()).select_from(values).where(values.c.value > mine)
    ).scalar_one()
    return {"user_id": user_id, "rank": int(above) + 1, "value": int(mine)}


def leaderboard(
    engine: sa.Engine,
    prog: Programme,
    metric: str,
    period: Period,
    now: datetime,
    user_id: str | None = None,
) -> dict[str, Any]:
    """The board of `metric` for the `period` containing `now` (module docstring), and the
    rank and value of `user_id` when given (rank null: nothing in the period)."""
    _check_metric(prog, metric)
    first, last = period_days(prog, period, now)
    values = _values(prog, metric, first, last)
    rank = sa.func.rank().over(order_by=values.c.value.desc()).label("rank")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(rank, values.c.user_id, values.c.value)
            .order_by(values.c.value.desc(), _bytewise(conn, values.c.user_id))
            .limit(prog.rules.leaderboards.size)
        ).all()
        me = _own(conn, values, user_id) if user_id is not None else None
    return {
        "metric": metric,
        "period": period,
        "first_day": first,
        "last_day": last,
        "entries": [{"rank": int(r), "user_id": u, "value": int(v)} for r, u, v in rows],
        "me": me,
    }
