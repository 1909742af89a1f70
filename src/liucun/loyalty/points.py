"""Points operations with idempotency keys: award, spend, adjust, reverse an order on refund,
and the expiry job; and what a member holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.ledger import Entry, available, credit, debit, expire_due
from liucun.loyalty.members import Member, as_utc, find_member, lock_member
from liucun.loyalty.operations import Outcome, run_once
from liucun.loyalty.programme import Programme
from liucun.state.db import write_transaction
from liucun.state.tables import loyalty_budgets, points_journal, points_lots

MAX_POINTS = 100_000_000


def check_points(points: int, what: str = "points") -> int:
    if not 0 < points <= MAX_POINTS:
        raise LoyaltyError(
            "bad_points",
            f"{what} must be a whole number from 1 to {MAX_POINTS:,}",
            f"积分须为 1 到 {MAX_POINTS:,} 之间的整数",
            status=422,
        )
    return points


def _moved(member: Member, points: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": member.user_id, "points": points, "balance": member.balance, **extra}


def award_points(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    points: int,
    key: str,
    now: datetime,
    reason: str,
    rule: str | None = None,
) -> Outcome:
    """Give the member `points` (an award from the `earned` account), once per `key`."""
    check_points(points)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        credit(conn, prog, member, points, Entry(key, rule=rule, reason=reason), now)
        return _moved(member, points)

    request = {"points": points, "reason": reason, "rule": rule}
    return run_once(engine, prog, user_id, key, "award", request, now, work)


def spend_points(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    points: int,
    key: str,
    now: datetime,
    reason: str,
) -> Outcome:
    """Spend `points` of the member's unexpired points, once per `key`; refused with
    `insufficient_points` when there are fewer."""
    check_points(points)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        debit(conn, prog, member, points, Entry(key, reason=reason), now)
        return _moved(member, points)

    return run_once(
        engine, prog, user_id, key, "spend", {"points": points, "reason": reason}, now, work
    )


def adjust_points(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    delta: int,
    key: str,
    now: datetime,
    reason: str,
) -> Outcome:
    """A manual correction by an operator: `delta` points in (> 0) or out (< 0), with a
    reason; a correction out may not take the balance below zero unless the playbook allows."""
    if not reason.strip():
        raise LoyaltyError(
            "reason_required", "an adjustment needs a reason", "调整积分须填写原因", status=422
        )
    check_points(abs(delta), "the adjustment")

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        entry = Entry(key, reason=reason)
        if delta > 0:
            credit(conn, prog, member, delta, entry, now, kind="adjust")
        else:
            allow = prog.rules.points.allow_negative
            debit(conn, prog, member, -delta, entry, now, kind="adjust", allow_negative=allow)
        return _moved(member, delta)

    request = {"delta": delta, "reason": reason}
    return run_once(engine, prog, user_id, key, "adjust", request, now, work)


def order_earnings(conn: sa.Connection, app_id: str, order_id: str) -> tuple[int, int, int]:
    """For `order_id`: the points it earned, the order's amount in fen, the points reversed."""
    j = points_journal.c
    rows = conn.execute(
        sa.select(j.kind, j.points, j.amount_fen).where(
            j.app_id == app_id, j.order_id == order_id, j.kind.in_(("earn", "reverse"))
        )
    ).all()
    earned = sum(r.points for r in rows if r.kind == "earn")
    amount = max((r.amount_fen or 0 for r in rows if r.kind == "earn"), default=0)
    reversed_ = sum(r.points for r in rows if r.kind == "reverse")
    return earned, amount, reversed_


def _count_refund(conn: sa.Connection, app_id: str, order_id: str, add_fen: int) -> int:
    """Add a refund of `add_fen` to the order's running total of refunds (fen) and return the
    total before it. Counted once per refund because the caller holds the member's lock and
    the refund's key."""
    b = loyalty_budgets.c
    budget = f"refunded:{order_id}"[:100]
    where = (b.app_id == app_id, b.budget == budget, b.period == "all")
    row = conn.execute(sa.select(b.used).where(*where)).first()
    before = int(row.used) if row else 0
    if row is None:
        conn.execute(
            loyalty_budgets.insert().values(
                app_id=app_id, budget=budget, period="all", used=add_fen
            )
        )
    else:
        conn.execute(loyalty_budgets.update().where(*where).values(used=before + add_fen))
    return before


def reverse_refund(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    order_id: str,
    refund_fen: int,
    entry: Entry,
    now: datetime,
) -> int:
    """Take back the points an order earned, in proportion to its refunds. An order of A fen
    that earned P points owes back floor(P × min(R, A) / A) after refunds totalling R; each
    refund takes the increase it makes to that figure, so the refunds of an order take back
    at most P in all and a refund delivered twice (or refunds adding up past the order) take
    nothing twice. The order's own lots are drawn first, then the member's other points; what
    the member no longer has becomes a debt if the playbook allows negative balances, or else
    is forgiven for good (a later refund of the same order takes only its own share). A refund
    of nothing (refund_fen <= 0), or of an order that earned nothing, takes nothing and is not
    counted. The journal rows carry `order_id` whatever `entry` says. Returns the points
    reversed now."""
    if refund_fen <= 0:
        return 0
    earned, amount, reversed_ = order_earnings(conn, prog.app_id, order_id)
    if earned == 0 or amount <= 0:
        return 0
    before = _count_refund(conn, prog.app_id, order_id, refund_fen)
    after = before + refund_fen
    share = earned * min(after, amount) // amount - earned * min(before, amount) // amount
    # never past what the order earned, even if the running total were lost
    due = min(share, earned - reversed_)
    allow = prog.rules.points.allow_negative
    if not allow:
        due = min(due, available(conn, prog, member, now))
    if due <= 0:
        return 0
    j = points_journal.c
    own = tuple(
        lot
        for (lot,) in conn.execute(
            sa.select(j.lot_id).where(
                j.app_id == prog.app_id, j.order_id == order_id, j.kind == "earn"
            )
        )
        if lot
    )
    # `order_earnings` finds the order's reversals by their order id
    entry = replace(entry, order_id=order_id)
    return debit(conn, prog, member, due, entry, now, "reverse", own, allow_negative=allow)


@dataclass(frozen=True)
class PointsSummary:
    user_id: str
    balance: int  # journal credits less debits (may count points past expiry not yet written off)
    available: int  # spendable now
    debt: int
    next_expiry: datetime | None
    next_expiry_points: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def points_summary(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> PointsSummary:
    """What the member holds at `now` (zeros for a user the programme has not seen)."""
    lots = points_lots.c
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user_id)
        if member is None:
            return PointsSummary(user_id, 0, 0, 0, None, 0)
        live = conn.execute(
            sa.select(lots.remaining, lots.expires_at).where(
                lots.app_id == prog.app_id,
                lots.user_id == user_id,
                lots.remaining > 0,
                sa.or_(lots.expires_at.is_(None), lots.expires_at > now),
            )
        ).all()
    expiring = sorted((as_utc(r.expires_at), r.remaining) for r in live if r.expires_at)
    first = expiring[0][0] if expiring else None
    return PointsSummary(
        user_id,
        member.balance,
        sum(r.remaining for r in live),
        member.debt,
        first,
        sum(points for at, points in expiring if at == first),
    )


def expire_points(engine: sa.Engine, prog: Programme, now: datetime) -> int:
    """Write off every member's points that expired by `now` (the daily job); points written
    off. Safe to run again and beside the server: each member is locked while it runs."""
    lots = points_lots.c
    with engine.connect() as conn:
        users = list(
            conn.execute(
                sa.select(lots.user_id)
                .where(lots.app_id == prog.app_id, lots.remaining > 0, lots.expires_at <= now)
                .distinct()
            ).scalars()
        )
    total = 0
    for user_id in users:
        with write_transaction(engine) as conn:
            total += expire_due(conn, prog, lock_member(conn, prog, user_id, now), now)
    return total


def journal_of(
    engine: sa.Engine, app_id: str, user_id: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The member's journal rows, newest first."""
    j = points_journal.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                j.entry_id,
                j.kind,
                j.debit,
                j.credit,
                j.points,
                j.rule,
                j.playbook_revision,
                j.event_id,
                j.order_id,
                j.reason,
                j.created_at,
                j.operation_key,
            )
            .where(j.app_id == app_id, j.user_id == user_id)
            .order_by(j.entry_id.desc())
            .limit(limit)
        ).mappings()
        return [{**r, "created_at": as_utc(r["created_at"])} for r in rows]
