"""Members: a user the loyalty programme has seen. Every write for a member first locks its row,
so that a member's writes run one at a time on every store and in every server process."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.programme import Programme
from liucun.state.tables import loyalty_members

# no 0/O, 1/I/L: codes are read aloud and typed from screenshots
INVITE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
INVITE_CODE_LENGTH = 8
USER_ID_MAX = 200


@dataclass
class Member:
    app_id: str
    user_id: str
    joined_at: datetime
    joined_day: date
    balance: int
    debt: int
    growth: int
    level: str
    level_since: datetime
    level_reviewed_at: datetime
    invite_code: str
    paid_orders: int
    created: bool = False  # this transaction made the member


def check_user_id(user_id: str) -> str:
    if not user_id or len(user_id) > USER_ID_MAX or user_id.strip() != user_id:
        raise LoyaltyError(
            "bad_user_id",
            f"user ids are 1–{USER_ID_MAX} characters without surrounding spaces",
            f"用户 ID 须为 1–{USER_ID_MAX} 个字符,且首尾不能有空格",
            status=422,
        )
    return user_id


def new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_CODE_LENGTH))


@cache
def _insert_ignoring(dialect: str, table: sa.Table) -> sa.Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # SQLAlchemy 2.1 keeps an INSERT's rowcount on PostgreSQL only when asked (else -1)
    return insert(table).on_conflict_do_nothing().execution_options(preserve_rowcount=True)


def insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table, row: dict[str, Any]) -> bool:
    """Insert `row` unless it would break a unique key; True if it was inserted."""
    # one statement per table, values bound at execution: building `.values(**row)` anew
    # each time cost more than running it
    return conn.execute(_insert_ignoring(conn.dialect.name, table), row).rowcount == 1


def lock_member(conn: sa.Connection, prog: Programme, user_id: str, now: datetime) -> Member:
    """The member `user_id`, created if new (joined now, and given the new-user pack), its row
    locked to the end of `conn`'s transaction (a write transaction: `write_transaction`)."""
    check_user_id(user_id)
    m = loyalty_members.c
    query = (
        sa.select(loyalty_members)
        .where(m.app_id == prog.app_id, m.user_id == user_id)
        .with_for_update()
    )
    row = conn.execute(query).mappings().first()
    created = False
    for _ in range(5):  # an invite code may collide with another member's: draw again
        if row is not None:
            break
        created = insert_ignoring_conflicts(
            conn,
            loyalty_members,
            {
                "app_id": prog.app_id,
                "user_id": user_id,
                "joined_at": now,
                "joined_day": prog.day(now),
                "balance": 0,
                "debt": 0,
                "growth": 0,
                "level": prog.rules.levels.tiers[0].name,
                "level_since": now,
                "level_reviewed_at": now,
                "invite_code": new_invite_code(),
                "paid_orders": 0,
            },
        )
        row = conn.execute(query).mappings().first()
    if row is None:
        raise RuntimeError("could not create the member: invite codes kept colliding")
    member = member_of(row, created)
    if created:
        # a user's first sight by the programme is its first visit: the new-user pack
        from liucun.loyalty.new_users import welcome_pack

        welcome_pack(conn, prog, member, now)
    return member


def member_of(row: Any, created: bool = False) -> Member:
    values = dict(row)
    for key in ("joined_at", "level_since", "level_reviewed_at"):
        values[key] = as_utc(values[key])
    return Member(**values, created=created)


def as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite returns them naive, in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def find_member(conn: sa.Connection, app_id: str, user_id: str) -> Member | None:
    """The member, unlocked (for reading), or None if the programme has not seen the user."""
    m = loyalty_members.c
    row = (
        conn.execute(sa.select(loyalty_members).where(m.app_id == app_id, m.user_id == user_id))
        .mappings()
        .first()
    )
    return member_of(row) if row else None


def update_member(conn: sa.Connection, member: Member, **values: Any) -> None:
    """Write `values` to the (locked) member's row and to `member`."""
    m = loyalty_members.c
    conn.execute(
        loyalty_members.update()
        .where(m.app_id == member.app_id, m.user_id == member.user_id)
        .values(**values)
    )
    for key, value in values.items():
        setattr(member, key, value)
