"""The loyalty programme's reactions to stored events: points by the earning rules, refunds
taken back, paid orders counted, visits for the monthly ladder, daily tasks and growth.

Every reaction is keyed by the event id (a paid order, and the points an amount-based rule
gives for an event with an order id, by its order id), so a batch delivered
again, an event replayed or a file imported twice awards nothing twice. A batch's events run
in one write transaction (one commit for the batch): its members locked in sorted order, each
member's events in time order. Events that nothing reacts to never open a transaction.

Earning rules (`loyalty.earning`), for an event whose name is the rule's `event`:
- `server_only` rules only count events the app's backend sent (`trusted`);
- points are the fixed `points`, or floor(amount in fen × `per_yuan` / 100) (12.34 yuan at 1
  point a yuan: 12 points), then × the member-day multiplier when `member_day` and the event
  happened on a member day (app-local), × the member's level multiplier when
  `level_multiplier`, rounded down once at the end;
- `nth_in_month`: only the member's n-th event of the rule in the event's app-local month
  (in the order the events reached the programme) earns;
- `daily_cap` / `monthly_cap`: the points the rule gave the member for events of the same
  app-local day / month (of the event's time) are at most the cap: an event earns what is
  left under it, or nothing;
- `monthly_budget`: the points the rule gives all members for events of one app-local month
  are at most the budget: an event earns what is left of it, or nothing once it is spent.
"""

from __future__ import annotations

import hashlib
import importlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.checkin import Grants, short_key
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.invites import on_first_order
from liucun.loyalty.ladder import climb, record_visit
from liucun.loyalty.ledger import Entry, credit
from liucun.loyalty.member_day import points_multiplier
from liucun.loyalty.members import (
    Member,
    check_user_id,
    insert_ignoring_conflicts,
    lock_member,
    update_member,
)
from liucun.loyalty.points import order_earnings, reverse_refund
from liucun.loyalty.programme import Programme
from liucun.loyalty.tasks import count_task_event
from liucun.playbook.loyalty import DailyTask, EarningRule
from liucun.state.db import write_transaction
from liucun.state.tables import counted_events, loyalty_budgets, points_journal

ORDER_EVENT = "order_paid"
SHARE_EVENT = "share"
EVENT_ID_MAX = 100  # the width of counted_events.event_id
ORDER_ID_MAX = 200  # the width of points_journal.order_id
# PostgreSQL's deadlock and serialization failures: the user's transaction is run again
RETRY_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 5


@dataclass
class ReactionReport:
    """What a batch's reactions did."""

    events: int = 0  # events seen
    reacted: int = 0  # events something reacted to (each in its user's transaction)
    users: int = 0  # users whose events were handled
    awards: Counter[str] = field(default_factory=Counter)  # points by earning rule
    awarded: Counter[str] = field(default_factory=Counter)  # events that earned, by rule
    reversed_points: int = 0  # points taken back on refunds
    paid_orders: int = 0  # orders counted for the first time
    visits: int = 0  # visits counted for the first time
    rewards: list[dict[str, Any]] = field(default_factory=list)  # ladder steps, tasks
    unavailable: list[dict[str, str]] = field(default_factory=list)  # rewards refused
    growth_entries: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reasons, once per event and rule

    def merge(self, other: ReactionReport) -> None:
        self.reacted += other.reacted
        self.users += other.users
        self.awards.update(other.awards)
        self.awarded.update(other.awarded)
        self.reversed_points += other.reversed_points
        self.paid_orders += other.paid_orders
        self.visits += other.visits
        self.rewards.extend(other.rewards)
        self.unavailable.extend(other.unavailable)
        self.growth_entries += other.growth_entries
        self.skipped.update(other.skipped)

    def add_grants(self, grants: Grants | None) -> None:
        if grants is not None:
            self.rewards.extend(grants.rewards)
            self.unavailable.extend(grants.unavailable)

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "reacted": self.reacted,
            "users": self.users,
            "awards": dict(self.awards),
            "awarded": dict(self.awarded),
            "points": sum(self.awards.values()),
            "reversed_points": self.reversed_points,
            "paid_orders": self.paid_orders,
            "visits": self.visits,
            "rewards": self.rewards,
            "unavailable": self.unavailable,
            "growth_entries": self.growth_entries,
            "skipped": dict(self.skipped),
        }


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Planned:
    """An event and what will react to it (decided from the playbook alone)."""

    event_id: str
    event: str
    user_id: str
    ts: datetime
    day: date
    amount_fen: int | None
    order_id: str | None
    rules: tuple[EarningRule, ...]
    refund: bool
    order: bool
    visit: bool
    tasks: tuple[DailyTask, ...]
    share: bool


def fen_of(amount: Any) -> int | None:
    """A yuan amount as whole fen, rounded half up (None when there is no usable amount)."""
    if amount is None or isinstance(amount, bool):
        return None
    try:
        value = Decimal(str(amount))
    except ArithmeticError:
        return None
    if not value.is_finite():
        return None
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _order_id(properties: Any) -> str | None:
    raw = properties.get("order_id") if isinstance(properties, dict) else None
    if raw is None or isinstance(raw, bool | dict | list) or str(raw) == "":
        return None
    return str(raw)


def trigger_events(prog: Programme) -> set[str]:
    """The event names anything in the programme reacts to (others need no look at all)."""
    rules = prog.rules
    return {
        *(r.event for r in rules.earning),
        rules.points.refund_event,
        ORDER_EVENT,
        SHARE_EVENT,
        *rules.ladder.visit_events,
        *(t.event for t in rules.tasks),
    }


def _plan(
    prog: Programme, raw: dict[str, Any], trusted: bool, skipped: Counter[str]
) -> Planned | None:
    """What reacts to `raw`, or None (with the reasons counted in `skipped`)."""
    user_id = raw.get("user_id")
    if not user_id:
        skipped["no_user"] += 1
        return None
    try:
        check_user_id(str(user_id))
    except LoyaltyError:
        skipped["bad_user_id"] += 1
        return None
    rules = prog.rules
    name = str(raw["event"])
    matching = [r for r in rules.earning if r.event == name]
    allowed = tuple(r for r in matching if trusted or not r.server_only)
    backend_only = name in (rules.points.refund_event, ORDER_EVENT)
    untrusted = len(matching) - len(allowed) + (backend_only and not trusted)
    if untrusted:
        skipped["untrusted"] += untrusted
    plan = Planned(
        event_id=str(raw["event_id"]),
        event=name,
        user_id=str(user_id),
        ts=_utc(raw["ts"]),
        day=prog.day(_utc(raw["ts"])),
        amount_fen=fen_of(raw.get("amount")),
        order_id=_order_id(raw.get("properties")),
        rules=allowed,
        refund=trusted and name == rules.points.refund_event,
        order=trusted and name == ORDER_EVENT,
        visit=name in rules.ladder.visit_events,
        tasks=tuple(t for t in rules.tasks if t.event == name),
        share=name == SHARE_EVENT,
    )
    if not (plan.rules or plan.refund or plan.order or plan.visit or plan.tasks or plan.share):
        if not matching and not backend_only:
            skipped["no_match"] += 1
        return None
    return plan


# --------------------------------------------------------------------------- counting once


def _fits(value: str) -> str:
    """`value` as a counted event id: itself, or a digest when it is too long for the column."""
    if len(value) <= EVENT_ID_MAX:
        return value
    return "#" + hashlib.sha256(value.encode()).hexdigest()


def count_once(
    conn: sa.Connection, prog: Programme, member: Member, event_id: str, counter: str, day: date
) -> bool:
    """Record `event_id` under `counter` for the member on app-local `day`; False if it was
    recorded before (the event was handled: nothing to do again)."""
    row = {
        "app_id": prog.app_id,
        "event_id": _fits(event_id),
        "counter": counter,
        "user_id": member.user_id,
        "day": day,
    }
    return insert_ignoring_conflicts(conn, counted_events, row)


def counted_between(
    conn: sa.Connection, prog: Programme, user_id: str, counter: str, first: date, last: date
) -> int:
    c = counted_events.c
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                c.app_id == prog.app_id,
                c.user_id == user_id,
                c.counter == counter,
                c.day >= first,
                c.day <= last,
            )
        ).scalar_one()
    )


# --------------------------------------------------------------------------- earning


def rule_counter(rule: EarningRule) -> str:
    return f"rule:{rule.name}"


def base_points(rule: EarningRule, amount_fen: int | None) -> int | None:
    """The rule's points before multipliers (None when a per-yuan rule has no amount)."""
    if rule.points is not None:
        return rule.points
    if amount_fen is None or rule.per_yuan is None:
        return None
    # exact decimals: 12.34 yuan at 1.0 a yuan is 1234 × 1 / 100 = 12, not float's 12.339…
    return int((Decimal(amount_fen) * Decimal(str(rule.per_yuan)) / 100).to_integral(ROUND_FLOOR))


def multiplied(
    prog: Programme, member: Member, rule: EarningRule, points: int, ts: datetime
) -> int:
    """`points` × the member-day and level multipliers the rule takes, rounded down."""
    factor = Decimal(1)
    if rule.member_day:
        factor *= points_multiplier(prog, ts)
    if rule.level_multiplier:
        factor *= Decimal(str(prog.rules.tier(member.level).points_multiplier))
    return int((points * factor).to_integral(ROUND_FLOOR))


def earned_between(
    conn: sa.Connection, prog: Programme, user_id: str, rule: EarningRule, first: date, last: date
) -> int:
    """Points the rule gave the member for events of app-local days `first`…`last` (the
    event's day is the one its counted row records)."""
    j, c = points_journal.c, counted_events.c
    joined = points_journal.join(
        counted_events,
        sa.and_(
            c.app_id == j.app_id,
            c.event_id == j.event_id,
            c.user_id == j.user_id,
            c.counter == rule_counter(rule),
        ),
    )
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(j.points), 0))
        .select_from(joined)
        .where(
            j.app_id == prog.app_id,
            j.user_id == user_id,
            j.rule == rule.name,
            j.kind == "earn",
            c.day >= first,
            c.day <= last,
        )
    ).scalar_one()
    return int(total)


def _month_of(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    last = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, date.fromordinal(last.toordinal() - 1)


def within_caps(
    conn: sa.Connection, prog: Programme, user_id: str, rule: EarningRule, day: date, points: int
) -> int:
    """`points`, less what would go past the rule's daily and monthly caps for the member."""
    if rule.daily_cap is not None:
        points = min(points, rule.daily_cap - earned_between(conn, prog, user_id, rule, day, day))
    if rule.monthly_cap is not None and points > 0:
        first, last = _month_of(day)
        left = rule.monthly_cap - earned_between(conn, prog, user_id, rule, first, last)
        points = min(points, left)
    return max(points, 0)


def within_budget(
    conn: sa.Connection, prog: Programme, rule: EarningRule, month: str, points: int
) -> int:
    """Take up to `points` from the rule's budget for `month` (all members) and return what was
    taken: all of it, what was left, or 0 once it is spent. The conditional update
    (`used + p <= budget`) holds the budget against other members' transactions."""
    budget = rule.monthly_budget
    if budget is None:
        return points
    b = loyalty_budgets.c
    name = f"rule:{rule.name}"
    where = (b.app_id == prog.app_id, b.budget == name, b.period == month)
    row = {"app_id": prog.app_id, "budget": name, "period": month, "used": 0}
    insert_ignoring_conflicts(conn, loyalty_budgets, row)
    for _ in range(ATTEMPTS * 2):
        used = int(conn.execute(sa.select(b.used).where(*where)).scalar_one())
        take = min(points, budget - used)
        if take <= 0:
            return 0
        update = loyalty_budgets.update().where(*where, b.used + take <= budget)
        if conn.execute(update.values(used=b.used + take)).rowcount == 1:
            return take
        # another member took some of it between the read and the update: read again
    return 0


def _earn(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    plan: Planned,
    rule: EarningRule,
    now: datetime,
    report: ReactionReport,
) -> None:
    if not count_once(conn, prog, member, plan.event_id, rule_counter(rule), plan.day):
        report.skipped["duplicate"] += 1
        return
    if (
        plan.order_id
        and rule.per_yuan
        and not count_once(
            conn,
            prog,
            member,
            short_key("order", plan.order_id),
            rule_counter(rule) + ":order",
            plan.day,
        )
    ):  # an order earns once per rule even when it is sent again under a new event id
        report.skipped["duplicate"] += 1
        return
    if rule.nth_in_month is not None:
        first, last = _month_of(plan.day)
        nth = counted_between(conn, prog, member.user_id, rule_counter(rule), first, last)
        if nth != rule.nth_in_month:
            report.skipped["not_nth"] += 1
            return
    base = base_points(rule, plan.amount_fen)
    if base is None:
        report.skipped["no_amount"] += 1
        return
    points = multiplied(prog, member, rule, base, plan.ts)
    if points <= 0:
        report.skipped["zero_points"] += 1
        return
    points = within_caps(conn, prog, member.user_id, rule, plan.day, points)
    if points <= 0:
        report.skipped["capped"] += 1
        return
    points = within_budget(conn, prog, rule, plan.day.strftime("%Y-%m"), points)
    if points <= 0:
        report.skipped["budget_spent"] += 1
        return
    entry = Entry(
        key=short_key("event", plan.event_id, rule.name),
        rule=rule.name,
        event_id=_fits(plan.event_id),
        order_id=plan.order_id,
        amount_fen=plan.amount_fen,
    )
    credit(conn, prog, member, points, entry, now)
    report.awards[rule.name] += points
    report.awarded[rule.name] += 1


# --------------------------------------------------------------------------- other reactions


def _refund(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    plan: Planned,
    now: datetime,
    report: ReactionReport,
) -> None:
    if not count_once(conn, prog, member, plan.event_id, "refund", plan.day):
        report.skipped["duplicate"] += 1
        return
    if plan.order_id is None:
        report.skipped["no_order_id"] += 1
        return
    refund_fen = plan.amount_fen
    if refund_fen is None:  # no amount: the whole order
        refund_fen = order_earnings(conn, prog.app_id, plan.order_id)[1]
    if refund_fen <= 0:
        report.skipped["no_amount"] += 1
        return
    key = short_key("refund", plan.event_id)
    entry = Entry(key, event_id=_fits(plan.event_id), order_id=plan.order_id)
    report.reversed_points += reverse_refund(
        conn, prog, member, plan.order_id, refund_fen, entry, now
    )


def _paid_order(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    plan: Planned,
    now: datetime,
    report: ReactionReport,
) -> None:
    if count_once(conn, prog, member, plan.order_id or plan.event_id, "order", plan.day):
        update_member(conn, member, paid_orders=member.paid_orders + 1)
        report.paid_orders += 1
        if member.paid_orders == 1:  # an invite rewarded on the first order pays out now
            on_first_order(conn, prog, member, now)


def _visit(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    plan: Planned,
    now: datetime,
    report: ReactionReport,
) -> bool:
    """Count the visit once; True when it was new."""
    if not count_once(conn, prog, member, plan.event_id, "visit", plan.day):
        return False
    record_visit(conn, prog, member, plan.day)
    report.visits += 1
    report.add_grants(climb(conn, prog, member, plan.day, now))
    return True


# --------------------------------------------------------------------------- growth

GrowthFn = Callable[..., Any]


def growth_function() -> GrowthFn | None:
    """`levels.add_growth` when the levels module is installed, else None (no growth)."""
    try:
        levels = importlib.import_module("liucun.loyalty.levels")
    except ImportError:
        return None
    add_growth: GrowthFn | None = getattr(levels, "add_growth", None)
    return add_growth


def _growth(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    plan: Planned,
    new_visit: bool,
    now: datetime,
    report: ReactionReport,
) -> None:
    """Growth value: spending (a paid order's amount), an active day (the day's first visit)
    and shares, each keyed so that it counts once."""
    add_growth = growth_function()
    if add_growth is None:
        return
    given: list[Any] = []
    if plan.order and plan.amount_fen:
        key = short_key("spend", plan.order_id or plan.event_id)
        given.append(add_growth(conn, prog, member, "spend", plan.amount_fen, key, now))
    if new_visit:
        key = short_key("active_day", member.user_id, plan.day.isoformat())
        given.append(add_growth(conn, prog, member, "active_day", 1, key, now))
    if plan.share:
        key = short_key("share", plan.event_id)
        given.append(add_growth(conn, prog, member, "share", 1, key, now))
    report.growth_entries += sum(1 for g in given if g)


# --------------------------------------------------------------------------- the run


def _react_one(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    plan: Planned,
    now: datetime,
    report: ReactionReport,
) -> None:
    report.reacted += 1
    if plan.order:
        _paid_order(conn, prog, member, plan, now, report)
    for rule in plan.rules:
        _earn(conn, prog, member, plan, rule, now, report)
    if plan.refund:
        _refund(conn, prog, member, plan, now, report)
    new_visit = plan.visit and _visit(conn, prog, member, plan, now, report)
    for task in plan.tasks:
        event_id = _fits(plan.event_id)
        report.add_grants(count_task_event(conn, prog, member, task, event_id, plan.day, now))
    _growth(conn, prog, member, plan, new_visit, now, report)


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES


BudgetRow = tuple[str, str]  # (budget, period)


def budget_rows(plans: Iterable[Planned]) -> list[BudgetRow]:
    """The monthly budget rows `plans` may draw on, in the one order every transaction locks
    them in."""
    return sorted(
        {
            (f"rule:{rule.name}", plan.day.strftime("%Y-%m"))
            for plan in plans
            for rule in plan.rules
            if rule.monthly_budget is not None
        }
    )


def _create_budget_rows(engine: sa.Engine, prog: Programme, rows: list[BudgetRow]) -> None:
    """Make the budget rows exist, committed, before any member's transaction locks them (two
    transactions inserting the same new rows in different orders could deadlock)."""
    if not rows:
        return
    with write_transaction(engine) as conn:
        for budget, period in rows:
            row = {"app_id": prog.app_id, "budget": budget, "period": period, "used": 0}
            insert_ignoring_conflicts(conn, loyalty_budgets, row)


def _lock_budget_rows(conn: sa.Connection, prog: Programme, rows: list[BudgetRow]) -> None:
    b = loyalty_budgets.c
    for budget, period in rows:
        conn.execute(
            sa.select(b.used)
            .where(b.app_id == prog.app_id, b.budget == budget, b.period == period)
            .with_for_update()
        )


def _react_users(
    engine: sa.Engine, prog: Programme, by_user: dict[str, list[Planned]], now: datetime
) -> ReactionReport:
    """A batch's users in one transaction (one commit, not one a user): their members locked
    in sorted order, then the budget rows their events draw on, in sorted order, so that two
    batches never wait on each other in a circle. Run again from the start should PostgreSQL
    still pick it as a deadlock's victim (rows other modules lock, such as coupon stock)."""
    rows = budget_rows(p for plans in by_user.values() for p in plans)
    _create_budget_rows(engine, prog, rows)
    for attempt in range(ATTEMPTS):
        part = ReactionReport(users=len(by_user))
        try:
            with write_transaction(engine) as conn:
                members = {u: lock_member(conn, prog, u, now) for u in sorted(by_user)}
                _lock_budget_rows(conn, prog, rows)
                for user_id, member in members.items():
                    for plan in sorted(by_user[user_id], key=lambda p: (p.ts, p.event_id)):
                        _react_one(conn, prog, member, plan, now, part)
            return part
        except sa.exc.DBAPIError as exc:
            if not _retryable(exc) or attempt == ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # let the other one finish
    raise AssertionError("unreachable")


def react(
    engine: sa.Engine,
    prog: Programme,
    events: Iterable[dict[str, Any]],
    trusted: bool,
    now: datetime,
) -> ReactionReport:
    """React to `events` (dicts with event_id, event, user_id, ts, amount in yuan or None,
    properties) as the module's docstring says; `trusted` when the app's backend sent them.
    Safe to run again on the same events: nothing is awarded twice."""
    report = ReactionReport()
    by_user: dict[str, list[Planned]] = defaultdict(list)
    for raw in events:
        report.events += 1
        plan = _plan(prog, raw, trusted, report.skipped)
        if plan is not None:
            by_user[plan.user_id].append(plan)
    if by_user:
        report.merge(_react_users(engine, prog, by_user, now))
    return report
