"""The points ledger: an immutable double-entry journal, lots that expire, balances derived.

Every movement is a journal row moving points from a debit account to a credit account. The
member's account is `member`; the others are the system's: `earned` (where awards come from),
`spent`, `expired`, `adjusted` (manual corrections, either way) and `reversed` (refunds). A
member's balance is the sum of the journal's credits to `member` less its debits, and equals
the points left in its lots less its debt. Spends draw on the lots that expire first; points
past their expiry are written off before anything is spent, so they never spend.

These functions work inside a write transaction on a member whose row is locked
(`operations.run_once` or `members.lock_member`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.members import Member, as_utc, update_member
from liucun.loyalty.programme import Programme
from liucun.state.tables import points_journal, points_lots

MEMBER = "member"
EARNED, SPENT, EXPIRED, ADJUSTED, REVERSED = "earned", "spent", "expired", "adjusted", "reversed"


@dataclass(frozen=True)
class Entry:
    """Where a movement came from, for the journal."""

    key: str  # the operation's idempotency key
    rule: str | None = None
    event_id: str | None = None
    order_id: str | None = None
    amount_fen: int | None = None
    reason: str | None = None


def expiry_of(prog: Programme, earned_at: datetime) -> datetime | None:
    """When points earned at `earned_at` expire (the instant they stop spending), by the
    playbook's `points.expiry`: never; `expiry_days` later; or at the end of the following
    app-local year (points earned in 2026 expire when 2028 begins there)."""
    rules = prog.rules.points
    if rules.expiry == "never":
        return None
    if rules.expiry == "days":
        return earned_at + timedelta(days=rules.expiry_days)
    year = prog.local(earned_at).year
    return datetime(year + 2, 1, 1, tzinfo=prog.tz).astimezone(UTC)


def _journal(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    kind: str,
    debit: str,
    credit: str,
    points: int,
    entry: Entry,
    now: datetime,
    lot_id: int | None = None,
) -> None:
    conn.execute(
        points_journal.insert().values(
            app_id=prog.app_id,
            user_id=member.user_id,
            operation_key=entry.key,
            kind=kind,
            debit=debit,
            credit=credit,
            points=points,
            lot_id=lot_id,
            rule=entry.rule,
            playbook_revision=prog.revision,
            event_id=entry.event_id,
            order_id=entry.order_id,
            amount_fen=entry.amount_fen,
            reason=entry.reason,
            created_at=now,
        )
    )


def credit(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    points: int,
    entry: Entry,
    now: datetime,
    kind: str = "earn",
) -> int:
    """Add `points` (> 0) to the member: an award (`earn`, from `earned`) or a correction
    (`adjust`, from `adjusted`). A debt left by a refund is paid first; the rest becomes a lot
    that expires by the playbook. Returns the new lot's id (0 when the debt took it all)."""
    if points <= 0:
        raise ValueError("credit needs a positive number of points")
    source = EARNED if kind == "earn" else ADJUSTED
    paid = min(member.debt, points)
    lot_id = 0
    if points > paid:
        lot_id = int(
            conn.execute(
                points_lots.insert()
                .values(
                    app_id=prog.app_id,
                    user_id=member.user_id,
                    earned_at=now,
                    expires_at=expiry_of(prog, now),
                    points=points - paid,
                    remaining=points - paid,
                )
                .returning(points_lots.c.lot_id)
            ).scalar_one()
        )
    _journal(conn, prog, member, kind, source, MEMBER, points, entry, now, lot_id or None)
    update_member(conn, member, balance=member.balance + points, debt=member.debt - paid)
    return lot_id


def _live_lots(conn: sa.Connection, prog: Programme, member: Member, now: datetime) -> list[Any]:
    lots = points_lots.c
    return list(
        conn.execute(
            sa.select(lots.lot_id, lots.remaining, lots.expires_at)
            .where(
                lots.app_id == prog.app_id,
                lots.user_id == member.user_id,
                lots.remaining > 0,
                sa.or_(lots.expires_at.is_(None), lots.expires_at > now),
            )
            # the lots that expire first are spent first; never-expiring ones last
            .order_by(lots.expires_at.is_(None), lots.expires_at, lots.lot_id)
        )
    )


def expire_due(conn: sa.Connection, prog: Programme, member: Member, now: datetime) -> int:
    """Write off the member's points whose lots expired by `now`; the points written off."""
    lots = points_lots.c
    due = conn.execute(
        sa.select(lots.lot_id, lots.remaining, lots.expires_at).where(
            lots.app_id == prog.app_id,
            lots.user_id == member.user_id,
            lots.remaining > 0,
            lots.expires_at <= now,
        )
    ).all()
    total = 0
    for lot in due:
        entry = Entry(key=f"expire:{lot.lot_id}", reason=f"expired {as_utc(lot.expires_at)}")
        _journal(
            conn, prog, member, "expire", MEMBER, EXPIRED, lot.remaining, entry, now, lot.lot_id
        )
        conn.execute(points_lots.update().where(lots.lot_id == lot.lot_id).values(remaining=0))
        total += lot.remaining
    if total:
        update_member(conn, member, balance=member.balance - total)
    return total


def available(conn: sa.Connection, prog: Programme, member: Member, now: datetime) -> int:
    """Points the member can spend at `now`: left in lots that have not expired."""
    return sum(lot.remaining for lot in _live_lots(conn, prog, member, now))


def debit(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    points: int,
    entry: Entry,
    now: datetime,
    kind: str = "spend",
    first_lots: tuple[int, ...] = (),
    allow_negative: bool = False,
) -> int:
    """Take `points` (> 0) from the member: a `spend` (to `spent`), a `reverse` (to `reversed`)
    or an `adjust` (to `adjusted`). Expired points are written off first and never spend; lots
    in `first_lots` are drawn first, then those that expire first. Without `allow_negative`,
    LoyaltyError when the member has fewer points; with it, the shortfall becomes a debt that
    later awards pay. Returns the points taken."""
    if points <= 0:
        raise ValueError("debit needs a positive number of points")
    destination = {"spend": SPENT, "reverse": REVERSED, "adjust": ADJUSTED}[kind]
    expire_due(conn, prog, member, now)
    live = _live_lots(conn, prog, member, now)
    live.sort(key=lambda lot: lot.lot_id not in first_lots)  # stable: keeps expiry order
    have = sum(lot.remaining for lot in live)
    if points > have and not allow_negative:
        raise LoyaltyError(
            "insufficient_points",
            f"not enough points: {have} available, {points} needed",
            f"积分不足:可用 {have} 分,需要 {points} 分",
        )
    lots = points_lots.c
    left = points
    for lot in live:
        if left == 0:
            break
        take = min(left, lot.remaining)
        _journal(conn, prog, member, kind, MEMBER, destination, take, entry, now, lot.lot_id)
        conn.execute(
            points_lots.update()
            .where(lots.lot_id == lot.lot_id)
            .values(remaining=lot.remaining - take)
        )
        left -= take
    if left:
        _journal(conn, prog, member, kind, MEMBER, destination, left, entry, now)
    update_member(conn, member, balance=member.balance - points, debt=member.debt + left)
    return points


def journal_balance(conn: sa.Connection, app_id: str, user_id: str) -> int:
    """The member's balance from the journal alone: credits to `member` less its debits."""
    j = points_journal.c
    signed = sa.case((j.credit == MEMBER, j.points), else_=-j.points)
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(signed), 0)).where(
            j.app_id == app_id, j.user_id == user_id
        )
    ).scalar_one()
    return int(total)
