"""Frequency caps: how many messages one user receives per app-local day and calendar month,
counted over every campaign and scenario.

A message counts in the periods of the instant it goes out — the decision time, or the end of
the quiet hours it is held in — so "1 a day" is what the user sees on their phone. Counts live
in `engage_cap_counts`, one row per user and period (`YYYY-MM-DD`, `YYYY-MM`); a decision
locks the rows of its users (FOR UPDATE on PostgreSQL, the write lock on SQLite), checks and
raises them in the same transaction, so no two decisions can both take the last slot; a row
not there yet is inserted plainly, so of two transactions creating it one fails and decides
again. A message
that fails for good gives its slots back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.engage.bulk import for_update, insert_rows, mark, select_in, update_many
from liucun.state.tables import engage_cap_counts


def cap_periods(moment: datetime, tz: ZoneInfo) -> tuple[str, str]:
    """The app-local day (`YYYY-MM-DD`) and month (`YYYY-MM`) that `moment` counts in."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(table)


def upsert(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], update: Sequence[str]
) -> None:
    """Write whole rows, replacing the `update` columns of those that exist: for rows this
    transaction holds locked, one statement instead of one UPDATE per row."""
    if not rows:
        return
    statement = dialect_insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={c: statement.excluded[c] for c in update}
    )
    conn.execute(statement, list(rows))


def lock_caps(
    conn: sa.Connection, app_id: str, users: Sequence[str], periods: Sequence[str]
) -> dict[tuple[str, str], int]:
    """The stored counts of `users` (sorted) in `periods`, locked to the end of the
    transaction; keyed by (user, period). A count not stored yet is 0, and is written by
    `write_caps` with a plain INSERT: should another transaction store it first, that INSERT
    fails and the decision is made again, so no count is lost."""
    m = mark(conn)
    sql = (
        f"SELECT user_id, period, used FROM engage_cap_counts WHERE app_id = {m} "
        f"AND period IN ({', '.join([m] * len(periods))}) AND user_id IN ({{in}})"
    )
    trailing = " ORDER BY user_id, period" + for_update(conn)
    rows = select_in(conn, sql, [app_id, *periods], list(users), trailing)
    return {(u, p): used for u, p, used in rows}


def write_caps(
    conn: sa.Connection,
    app_id: str,
    counts: dict[tuple[str, str], int],
    stored: Collection[tuple[str, str]],
) -> None:
    """Store counts: UPDATE those `lock_caps` found (`stored`, locked), INSERT the others."""
    keys = sorted(counts)
    update_many(
        conn,
        "engage_cap_counts",
        ["used"],
        ["app_id", "user_id", "period"],
        ["int", "text", "text", "text"],
        [(counts[k], app_id, *k) for k in keys if k in stored],
    )
    # a clash with a count another transaction stored first fails this as an INSERT would
    insert_rows(
        conn,
        "engage_cap_counts",
        ["app_id", "user_id", "period", "used"],
        [(app_id, *k, counts[k]) for k in keys if k not in stored],
    )


def release_caps(conn: sa.Connection, app_id: str, user_id: str, periods: Iterable[str]) -> None:
    """Give back one slot in each period (a message that was not delivered)."""
    c = engage_cap_counts.c
    for period in sorted(periods):
        conn.execute(
            sa.update(engage_cap_counts)
            .where(c.app_id == app_id, c.user_id == user_id, c.period == period, c.used > 0)
            .values(used=c.used - 1)
        )


def usage(engine: sa.Engine, app_id: str, user_id: str) -> dict[str, int]:
    """A user's counts by period (for the admin API)."""
    c = engage_cap_counts.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.period, c.used).where(c.app_id == app_id, c.user_id == user_id)
        )
        return {r.period: r.used for r in rows}
