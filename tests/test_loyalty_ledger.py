"""The points ledger proved exact: random sequences of awards, spends, corrections, order
refunds, clock moves and expiry-policy changes against a plain-Python model written from the
ledger's rules (docs/loyalty.md, ledger.py and points.py docstrings), never by calling it;
expiry at the Asia/Shanghai new year; refunds; idempotency keys raced by threads; and a
hundred and fifty concurrent awards and spends on one member. Every test runs on SQLite and
on PostgreSQL.

Asia/Shanghai is UTC+8: 16:00Z is local midnight of the next date.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.ledger import Entry, credit, journal_balance
from liucun.loyalty.members import Member, as_utc, find_member
from liucun.loyalty.operations import Outcome, run_once
from liucun.loyalty.points import (
    adjust_points,
    award_points,
    expire_points,
    journal_of,
    order_earnings,
    points_summary,
    reverse_refund,
    spend_points,
)
from liucun.loyalty.programme import Programme, programme_of
from liucun.playbook.store import apply_playbook
from liucun.state.apps import create_app, find_app
from liucun.state.tables import loyalty_members, points_journal, points_lots

TZ = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TZ)
SYSTEM_ACCOUNTS = {"earned", "spent", "expired", "adjusted", "reversed"}
MEMBER = "member"


# --- the store and the app under test ---


def playbook_text(**points: Any) -> str:
    """A playbook that sets only `loyalty.points`; every other key takes its default."""
    return yaml.safe_dump({"version": 1, "loyalty": {"points": points}})


def new_programme(engine: sa.Engine, **points: Any) -> Programme:
    """A new app in Asia/Shanghai with the given points rules (the defaults otherwise)."""
    creds = create_app(engine, f"shop-{secrets.token_hex(6)}", TZ)
    if points:
        apply_playbook(engine, creds.app_id, playbook_text(**points))
    return programme_of(engine, find_app(engine, creds.app_id))


def set_points_rules(engine: sa.Engine, prog: Programme, **points: Any) -> Programme:
    apply_playbook(engine, prog.app_id, playbook_text(**points))
    return programme_of(engine, find_app(engine, prog.app_id))


# Orders earn through `ledger.credit` with the order's id and amount; the order-earning route
# is not this file's, so a test-only path runs it under an idempotency key like every write.


def award_order(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    order_id: str,
    amount_fen: int,
    points: int,
    key: str,
    now: datetime,
) -> Outcome:
    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        entry = Entry(key, rule="order", order_id=order_id, amount_fen=amount_fen)
        credit(conn, prog, member, points, entry, now)
        return {"user_id": user_id, "points": points, "balance": member.balance}

    request = {"order_id": order_id, "amount_fen": amount_fen, "points": points}
    return run_once(engine, prog, user_id, key, "order", request, now, work)


def refund_order(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    order_id: str,
    refund_fen: int,
    key: str,
    now: datetime,
) -> Outcome:
    # the entry deliberately leaves out the order id: reverse_refund must put it on the
    # journal rows itself (the journal shows each reversal against its order)
    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        entry = Entry(key, reason="refund")
        reversed_ = reverse_refund(conn, prog, member, order_id, refund_fen, entry, now)
        return {"user_id": user_id, "points": reversed_, "balance": member.balance}

    request = {"order_id": order_id, "refund_fen": refund_fen}
    return run_once(engine, prog, user_id, key, "refund", request, now, work)


# --- the model: the ledger's rules in plain Python ---


@dataclass
class Lot:
    expires: datetime | None
    points: int
    remaining: int

    def live(self, now: datetime) -> bool:
        return self.remaining > 0 and (self.expires is None or self.expires > now)

    def due(self, now: datetime) -> bool:
        return self.remaining > 0 and self.expires is not None and self.expires <= now


@dataclass
class Holding:
    lots: list[Lot] = field(default_factory=list)  # in the order they were earned
    debt: int = 0

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots) - self.debt

    def available(self, now: datetime) -> int:
        return sum(lot.remaining for lot in self.lots if lot.live(now))


@dataclass
class Order:
    user_id: str
    points: int
    amount_fen: int
    lot: Lot | None
    refunded_fen: int = 0
    reversed: int = 0


class RefusedError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Model:
    """The rules: a balance is the points left in lots less the debt; awards pay the debt
    first and the rest is a lot expiring by the policy in force when it was earned; debits
    write off every lot past its expiry first (and only when they go ahead), then draw the
    order's own lot, then the lots that expire first (never-expiring last, then oldest);
    a refund reverses its share of floor(earned × min(refunded, amount) / amount), only what
    is left unless negative balances are allowed (the rest is forgiven for good); a key
    answers with its first result, another request under it is refused, a refused request is
    not remembered."""

    def __init__(self) -> None:
        self.expiry = "end_of_following_year"
        self.expiry_days = 365
        self.allow_negative = False
        self.negative_ever_allowed = False
        self.holdings: defaultdict[str, Holding] = defaultdict(Holding)
        # (user, kind, debit, credit, points, order_id) → rows
        self.journal: Counter[tuple[str, str, str, str, int, str | None]] = Counter()
        self.orders: dict[str, Order] = {}
        self.keys: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self.members: set[str] = set()  # users some write succeeded for

    def expires_at(self, earned: datetime) -> datetime | None:
        if self.expiry == "never":
            return None
        if self.expiry == "days":
            return earned + timedelta(days=self.expiry_days)
        local_year = earned.astimezone(SHANGHAI).year
        return datetime(local_year + 2, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)

    def _row(
        self, user: str, kind: str, debit: str, credit: str, points: int, order: str | None
    ) -> None:
        self.journal[(user, kind, debit, credit, points, order)] += 1

    def credit(
        self, user: str, points: int, kind: str, now: datetime, order: str | None = None
    ) -> Lot | None:
        h = self.holdings[user]
        paid = min(h.debt, points)
        h.debt -= paid
        lot = None
        if points > paid:
            lot = Lot(self.expires_at(now), points - paid, points - paid)
            h.lots.append(lot)
        self._row(user, kind, "earned" if kind == "earn" else "adjusted", MEMBER, points, order)
        return lot

    def write_off(self, user: str, now: datetime) -> int:
        total = 0
        for lot in self.holdings[user].lots:
            if lot.due(now):
                self._row(user, "expire", MEMBER, "expired", lot.remaining, None)
                total += lot.remaining
                lot.remaining = 0
        return total

    def debit(
        self,
        user: str,
        points: int,
        kind: str,
        now: datetime,
        first: Lot | None = None,
        allow_negative: bool = False,
        order: str | None = None,
    ) -> None:
        h = self.holdings[user]
        if points > h.available(now) and not allow_negative:
            raise RefusedError("insufficient_points")  # before anything changes
        self.write_off(user, now)
        live = [lot for lot in h.lots if lot.live(now)]
        # expiring first, never-expiring last; ties by age (list order; sorted is stable)
        live.sort(key=lambda lot: (lot.expires is None, lot.expires or now))
        live.sort(key=lambda lot: lot is not first)
        destination = {"spend": "spent", "reverse": "reversed", "adjust": "adjusted"}[kind]
        left = points
        for lot in live:
            if left == 0:
                break
            take = min(left, lot.remaining)
            lot.remaining -= take
            left -= take
            self._row(user, kind, MEMBER, destination, take, order)
        if left:
            self._row(user, kind, MEMBER, destination, left, order)
            h.debt += left

    def once(
        self, key: str, fingerprint: tuple[Any, ...], run: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        if key in self.keys:
            first_print, result = self.keys[key]
            if first_print != fingerprint:
                raise RefusedError("idempotency_key_reused")
            return result, True
        result = run()  # RefusedError propagates: not remembered
        self.keys[key] = (fingerprint, result)
        self.members.add(fingerprint[1])
        return result, False

    def moved(self, user: str, points: int) -> dict[str, Any]:
        return {"user_id": user, "points": points, "balance": self.holdings[user].balance}

    # the operations

    def award(self, user: str, points: int, key: str, now: datetime) -> tuple[Any, bool]:
        def run() -> dict[str, Any]:
            self.credit(user, points, "earn", now)
            return self.moved(user, points)

        return self.once(key, ("award", user, points), run)

    def spend(self, user: str, points: int, key: str, now: datetime) -> tuple[Any, bool]:
        def run() -> dict[str, Any]:
            self.debit(user, points, "spend", now)
            return self.moved(user, points)

        return self.once(key, ("spend", user, points), run)

    def adjust(self, user: str, delta: int, key: str, now: datetime) -> tuple[Any, bool]:
        def run() -> dict[str, Any]:
            if delta > 0:
                self.credit(user, delta, "adjust", now)
            else:
                self.debit(user, -delta, "adjust", now, allow_negative=self.allow_negative)
            return self.moved(user, delta)

        return self.once(key, ("adjust", user, delta), run)

    def order(
        self, user: str, order_id: str, amount_fen: int, points: int, key: str, now: datetime
    ) -> tuple[Any, bool]:
        def run() -> dict[str, Any]:
            lot = self.credit(user, points, "earn", now, order_id)
            self.orders[order_id] = Order(user, points, amount_fen, lot)
            return self.moved(user, points)

        return self.once(key, ("order", user, order_id, amount_fen, points), run)

    def refund(
        self, user: str, order_id: str, refund_fen: int, key: str, now: datetime
    ) -> tuple[Any, bool]:
        def run() -> dict[str, Any]:
            order = self.orders[order_id]
            owed_before = self.owed(order)
            order.refunded_fen += refund_fen
            due = self.owed(order) - owed_before  # this refund's share of the order's points
            if not self.allow_negative:
                # what was spent is forgiven: take back only what is left
                due = min(due, self.holdings[user].available(now))
            if due > 0:
                negative = self.allow_negative
                self.debit(user, due, "reverse", now, order.lot, negative, order_id)
                order.reversed += due
            return self.moved(user, due)

        return self.once(key, ("refund", user, order_id, refund_fen), run)

    @staticmethod
    def owed(order: Order) -> int:
        """What an order's refunds take back in all: floor(P × min(R, A) / A)."""
        return order.points * min(order.refunded_fen, order.amount_fen) // order.amount_fen

    def expire_job(self, now: datetime) -> int:
        return sum(self.write_off(user, now) for user in sorted(self.holdings))


# --- comparing the store with the model ---


def check_ledger(engine: sa.Engine, prog: Programme, model: Model, now: datetime) -> None:
    """The store holds what the model says, and its journal is a double-entry journal."""
    users = [*sorted(model.holdings), "never-seen"]
    with engine.connect() as conn:
        m = loyalty_members.c
        stored = {
            r.user_id: (r.balance, r.debt)
            for r in conn.execute(
                sa.select(m.user_id, m.balance, m.debt).where(m.app_id == prog.app_id)
            )
        }
        j = points_journal.c
        rows = conn.execute(
            sa.select(j.user_id, j.kind, j.debit, j.credit, j.points, j.order_id).where(
                j.app_id == prog.app_id
            )
        ).all()
        lt = points_lots.c
        lots = conn.execute(
            sa.select(lt.user_id, lt.expires_at, lt.points, lt.remaining).where(
                lt.app_id == prog.app_id
            )
        ).all()
        journal_balances = {u: journal_balance(conn, prog.app_id, u) for u in users}
        # what the store says each order earned and gave back
        orders = {o: order_earnings(conn, prog.app_id, o) for o in model.orders}
    assert set(stored) == model.members
    for user in users:
        held = model.holdings.get(user, Holding())
        # (a) the member's balance, the journal's and the model's agree; so does the debt
        assert stored.get(user, (0, 0)) == (held.balance, held.debt), user
        assert journal_balances[user] == held.balance, user
        # (b) no negative balance unless the playbook allowed one
        if not model.negative_ever_allowed:
            assert held.balance >= 0 and held.debt == 0
        # (c) what can be spent: the unexpired points left
        summary = points_summary(engine, prog, user, now)
        assert summary.available == held.available(now), user
        assert (summary.balance, summary.debt) == (held.balance, held.debt)
        live = [lot for lot in held.lots if lot.live(now) and lot.expires is not None]
        first = min((lot.expires for lot in live if lot.expires), default=None)
        assert summary.next_expiry == first
        assert summary.next_expiry_points == sum(x.remaining for x in live if x.expires == first)
    # every movement the model made, and no other
    assert Counter((r.user_id, r.kind, r.debit, r.credit, r.points, r.order_id) for r in rows) == (
        +model.journal
    )
    in_store = [
        (r.user_id, as_utc(r.expires_at) if r.expires_at else None, r.points, r.remaining)
        for r in lots
    ]
    in_model = [
        (user, lot.expires, lot.points, lot.remaining)
        for user, held in model.holdings.items()
        for lot in held.lots
    ]
    assert sorted(in_store, key=_lot_order) == sorted(in_model, key=_lot_order)
    # an order never gives back more than it earned
    assert orders == {
        o: (order.points, order.amount_fen, order.reversed) for o, order in model.orders.items()
    }
    assert all(order.reversed <= order.points for order in model.orders.values())
    check_double_entry(rows, stored)


def _lot_order(lot: tuple[str, datetime | None, int, int]) -> tuple[Any, ...]:
    user, expires, points, remaining = lot
    return (user, expires is None, expires or datetime.min.replace(tzinfo=UTC), points, remaining)


def check_double_entry(rows: Any, stored: dict[str, tuple[int, int]]) -> None:
    """(f) every row moves points > 0 between two different accounts, one of them the
    member's; what the system accounts hold is minus what the members hold."""
    system: Counter[str] = Counter()
    for r in rows:
        assert r.points > 0 and r.debit != r.credit
        assert (r.debit == MEMBER) != (r.credit == MEMBER)
        other = r.credit if r.debit == MEMBER else r.debit
        assert other in SYSTEM_ACCOUNTS
        system[r.credit] += r.points
        system[r.debit] -= r.points
    del system[MEMBER]
    assert sum(system.values()) == -sum(balance for balance, _ in stored.values())


# --- 1. random sequences against the model ---

USERS = ("u1", "u2", "u3")
KEY_POOL = ("k-a", "k-b", "k-c")  # shared keys: reused by other requests, or replayed
STEPS = (1, 3600, 86_400, 7 * 86_400, 40 * 86_400, 200 * 86_400, 400 * 86_400)
STARTS = (
    datetime(2026, 12, 31, 15, 0, tzinfo=UTC),  # 23:00 in Beijing on new year's eve
    datetime(2026, 6, 15, 2, 0, tzinfo=UTC),
    datetime(2027, 12, 31, 16, 0, tzinfo=UTC),  # 2028 begins in Beijing
)

Op = tuple[Any, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[datetime, list[Op]]:
    users = st.sampled_from(USERS[: draw(st.integers(1, 3))])
    keys = st.one_of(st.sampled_from(KEY_POOL), st.none())  # None: a fresh key
    op = st.one_of(
        st.tuples(st.just("award"), users, st.integers(1, 300), keys),
        st.tuples(st.just("spend"), users, st.integers(1, 20) | st.integers(1, 200), keys),
        st.tuples(
            st.just("adjust"), users, st.sampled_from((-1, 1)), st.integers(1, 300), keys
        ).map(lambda t: (t[0], t[1], t[2] * t[3], t[4])),
        st.tuples(st.just("order"), users, st.integers(100, 30_000), keys),
        # refunds in thousandths of the order's amount: partial, whole and past the whole
        *[st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 1200), keys)] * 2,
        st.tuples(st.just("repeat"), st.integers(0, 30)),
        st.tuples(st.just("advance"), st.sampled_from(STEPS)),
        st.tuples(st.just("to_expiry"), st.sampled_from((-1, 0))),
        st.tuples(st.just("expire")),
        st.tuples(
            st.just("policy"),
            st.sampled_from(("never", "days", "end_of_following_year")),
            st.sampled_from((1, 30, 365)),
            st.booleans(),
        ),
    )
    # an order first, so that refunds have something to take back
    first = draw(st.tuples(st.just("order"), users, st.integers(100, 30_000), keys))
    return draw(st.sampled_from(STARTS)), [first, *draw(st.lists(op, min_size=8, max_size=40))]


def outcome_label(op: Op, expected: Any) -> str:
    """What happened, for `--hypothesis-show-statistics` (are refusals and replays drawn?)."""
    if isinstance(expected, str):
        return f"{op[0]}: {expected}"
    result, replayed = expected
    return f"{op[0]}: " + (
        "replayed" if replayed else "nothing" if not result["points"] else "done"
    )


class Sequence:
    """One example: the store and the model side by side, on a fresh app."""

    def __init__(self, engine: sa.Engine, start: datetime) -> None:
        self.engine = engine
        self.prog = new_programme(engine)
        self.model = Model()
        self.now = start
        self.done: list[Op] = []  # operations as run, with their keys (for "repeat")
        self.fresh = 0

    def new_name(self, prefix: str) -> str:
        self.fresh += 1
        return f"{prefix}-{self.fresh}"

    def step(self, op: Op) -> None:
        kind = op[0]
        if kind == "advance":
            self.now += timedelta(seconds=op[1])
        elif kind == "to_expiry":
            self.to_expiry(op[1])
        elif kind == "expire":
            written_off = self.model.expire_job(self.now)
            assert expire_points(self.engine, self.prog, self.now) == written_off
            event("expire: " + ("wrote off" if written_off else "nothing due"))
        elif kind == "policy":
            self.set_policy(op[1], op[2], op[3])
        elif kind == "repeat":
            if self.done:
                self.write(self.done[op[1] % len(self.done)])
        else:
            self.write(self.concrete(op))
        check_ledger(self.engine, self.prog, self.model, self.now)

    def to_expiry(self, offset: int) -> None:
        """Move the clock to the next lot's expiry (or a second before it)."""
        ahead = [
            lot.expires
            for held in self.model.holdings.values()
            for lot in held.lots
            if lot.remaining and lot.expires and lot.expires > self.now
        ]
        if ahead:
            self.now = max(self.now, min(ahead) + timedelta(seconds=offset))

    def set_policy(self, expiry: str, days: int, allow_negative: bool) -> None:
        self.prog = set_points_rules(
            self.engine,
            self.prog,
            expiry=expiry,
            expiry_days=days,
            allow_negative=allow_negative,
        )
        assert self.prog.rules.points.expiry == expiry
        m = self.model
        m.expiry, m.expiry_days, m.allow_negative = expiry, days, allow_negative
        m.negative_ever_allowed |= allow_negative

    def concrete(self, op: Op) -> Op | None:
        """The operation with its key drawn and, for an order, its id and points."""
        key = op[-1] or self.new_name("key")
        if op[0] == "order":
            return ("order", op[1], self.new_name("order"), op[2], op[2] // 100, key)
        if op[0] == "refund":
            if not self.model.orders:
                return None
            order_id = list(self.model.orders)[op[1] % len(self.model.orders)]
            order = self.model.orders[order_id]
            refund_fen = max(1, order.amount_fen * op[2] // 1000)
            return ("refund", order.user_id, order_id, refund_fen, key)
        return (*op[:-1], key)

    def write(self, op: Op | None) -> None:
        if op is None:
            return
        self.done.append(op)
        try:
            expected: Any = self.in_model(op)
        except RefusedError as refused:
            expected = refused.code
        try:
            outcome = self.in_store(op)
            got: Any = (outcome.result, outcome.replayed)
        except LoyaltyError as error:
            got = error.code
        # (d) a spend beyond the unexpired points is refused, (e) a repeated key answers
        # with the first result; what changed (nothing, on both) is checked next
        assert got == expected, op
        event(outcome_label(op, expected))

    def in_model(self, op: Op) -> tuple[dict[str, Any], bool]:
        kind, *args = op
        m, now = self.model, self.now
        calls: dict[str, Callable[..., tuple[dict[str, Any], bool]]] = {
            "award": m.award,
            "spend": m.spend,
            "adjust": m.adjust,
            "order": m.order,
            "refund": m.refund,
        }
        return calls[kind](*args, now)

    def in_store(self, op: Op) -> Outcome:
        kind, user, *args = op
        e, p, now = self.engine, self.prog, self.now
        if kind == "award":
            return award_points(e, p, user, args[0], args[1], now, "test award")
        if kind == "spend":
            return spend_points(e, p, user, args[0], args[1], now, "test spend")
        if kind == "adjust":
            return adjust_points(e, p, user, args[0], args[1], now, "test correction")
        if kind == "order":
            return award_order(e, p, user, *args, now)
        return refund_order(e, p, user, *args, now)


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_ledger_matches_the_model(engine: sa.Engine, scenario: tuple[datetime, list[Op]]) -> None:
    start, ops = scenario
    note(f"start {start}, operations {ops}")
    run = Sequence(engine, start)
    check_ledger(engine, run.prog, run.model, run.now)
    for op in ops:
        run.step(op)


# --- 2. expiry at the Asia/Shanghai new year ---

LATE_2026 = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)  # 2026-12-31 23:30 in Beijing
EARLY_2027 = datetime(2026, 12, 31, 16, 10, tzinfo=UTC)  # 2027-01-01 00:10 in Beijing
END_2027 = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)  # 2028-01-01 00:00 in Beijing
END_2028 = datetime(2028, 12, 31, 16, 0, tzinfo=UTC)  # 2029-01-01 00:00 in Beijing


def lots_of(engine: sa.Engine, prog: Programme, user_id: str) -> list[tuple[Any, ...]]:
    """The member's lots in the order they were earned: (expires_at, points, remaining)."""
    lt = points_lots.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(lt.expires_at, lt.points, lt.remaining)
            .where(lt.app_id == prog.app_id, lt.user_id == user_id)
            .order_by(lt.lot_id)
        ).all()
    return [(as_utc(r.expires_at) if r.expires_at else None, r.points, r.remaining) for r in rows]


def balances(engine: sa.Engine, prog: Programme, user_id: str) -> tuple[int, int, int]:
    """(the member's balance, the journal's balance, the debt)."""
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user_id)
        from_journal = journal_balance(conn, prog.app_id, user_id)
    assert member is not None
    return member.balance, from_journal, member.debt


def refusal(call: Callable[[], Any]) -> str:
    with pytest.raises(LoyaltyError) as refused:
        call()
    return refused.value.code


def test_points_expire_when_the_following_year_ends_in_beijing(engine: sa.Engine) -> None:
    prog = new_programme(engine, expiry="end_of_following_year")
    award_points(engine, prog, "u1", 100, "late", LATE_2026, "earned in 2026 (local)")
    award_points(engine, prog, "u1", 50, "early", EARLY_2027, "earned in 2027 (local)")
    # 2026 in Beijing though 2026 in UTC too; 2027 in Beijing though still 2026 in UTC
    assert lots_of(engine, prog, "u1") == [(END_2027, 100, 100), (END_2028, 50, 50)]

    second_before = END_2027 - timedelta(seconds=1)
    summary = points_summary(engine, prog, "u1", second_before)
    assert (summary.available, summary.next_expiry, summary.next_expiry_points) == (
        150,
        END_2027,
        100,
    )
    assert expire_points(engine, prog, second_before) == 0
    # a second before: the 2026 points still spend, and are spent first (they expire first)
    spend_points(engine, prog, "u1", 10, "last-second", second_before, "spend")
    assert lots_of(engine, prog, "u1") == [(END_2027, 100, 90), (END_2028, 50, 50)]

    # at midnight they no longer spend, even before the job wrote them off
    summary = points_summary(engine, prog, "u1", END_2027)
    assert (summary.balance, summary.available, summary.next_expiry) == (140, 50, END_2028)
    journal_rows = len(journal_of(engine, prog.app_id, "u1"))
    spend = lambda: spend_points(engine, prog, "u1", 51, "midnight", END_2027, "spend")  # noqa: E731
    assert refusal(spend) == "insufficient_points"
    # the refused spend changed nothing (not even the write-off it began with)
    assert balances(engine, prog, "u1") == (140, 140, 0)
    assert len(journal_of(engine, prog.app_id, "u1")) == journal_rows

    assert expire_points(engine, prog, END_2027) == 90
    assert expire_points(engine, prog, END_2027) == 0  # the job run again: nothing twice
    expired = [r for r in journal_of(engine, prog.app_id, "u1") if r["kind"] == "expire"]
    assert [(r["debit"], r["credit"], r["points"]) for r in expired] == [("member", "expired", 90)]
    assert expired[0]["created_at"] == END_2027
    assert balances(engine, prog, "u1") == (50, 50, 0)
    assert lots_of(engine, prog, "u1") == [(END_2027, 100, 0), (END_2028, 50, 50)]
    # the 2027 points spend until 2029 begins in Beijing
    assert spend_points(engine, prog, "u1", 50, "spend-2027", END_2027, "spend").result == {
        "user_id": "u1",
        "points": 50,
        "balance": 0,
    }


def test_expiry_by_days_is_exact_to_the_second(engine: sa.Engine) -> None:
    prog = new_programme(engine, expiry="days", expiry_days=30)
    earned = datetime(2027, 3, 1, 4, 5, 6, tzinfo=UTC)
    award_points(engine, prog, "u1", 40, "a1", earned, "award")
    expires = datetime(2027, 3, 31, 4, 5, 6, tzinfo=UTC)
    assert lots_of(engine, prog, "u1") == [(expires, 40, 40)]
    assert points_summary(engine, prog, "u1", expires - timedelta(seconds=1)).available == 40
    assert points_summary(engine, prog, "u1", expires).available == 0
    # a debit writes the expired points off before it looks for points to take
    never = set_points_rules(engine, prog, expiry="never")
    award_points(engine, never, "u1", 5, "a2", expires, "award")
    spend = lambda: spend_points(engine, never, "u1", 6, "s1", expires, "spend")  # noqa: E731
    assert refusal(spend) == "insufficient_points"
    spend_points(engine, never, "u1", 5, "s2", expires, "spend")
    assert balances(engine, never, "u1") == (0, 0, 0)
    assert lots_of(engine, never, "u1") == [(expires, 40, 0), (None, 5, 0)]
    kinds = Counter((r["kind"], r["points"]) for r in journal_of(engine, prog.app_id, "u1"))
    assert kinds == Counter({("earn", 40): 1, ("earn", 5): 1, ("expire", 40): 1, ("spend", 5): 1})


# --- 3. refunds ---

T0 = datetime(2027, 5, 1, 4, 0, tzinfo=UTC)


def test_refunds_take_back_the_order_in_proportion_and_never_twice(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    # other points the refunds must leave alone
    award_points(engine, prog, "u1", 500, "welcome", T0, "welcome")
    award_order(engine, prog, "u1", "o1", 10_000, 100, "order:o1", T0)  # 100.00 yuan
    assert balances(engine, prog, "u1") == (600, 600, 0)

    first = refund_order(engine, prog, "u1", "o1", 3_000, "refund:1", T0)
    assert (first.result["points"], first.replayed) == (30, False)
    again = refund_order(engine, prog, "u1", "o1", 3_000, "refund:1", T0)  # delivered again
    assert (again.result, again.replayed) == (first.result, True)
    assert balances(engine, prog, "u1") == (570, 570, 0)
    rest = refund_order(engine, prog, "u1", "o1", 7_000, "refund:2", T0)
    assert rest.result["points"] == 70
    more = refund_order(engine, prog, "u1", "o1", 1_000, "refund:3", T0)  # past the order
    assert more.result["points"] == 0
    assert balances(engine, prog, "u1") == (500, 500, 0)
    # the order's own lot gave the points back; the welcome points are whole
    assert [lot[1:] for lot in lots_of(engine, prog, "u1")] == [(500, 500), (100, 0)]
    reversals = [r for r in journal_of(engine, prog.app_id, "u1") if r["kind"] == "reverse"]
    assert {(r["order_id"], r["credit"]) for r in reversals} == {("o1", "reversed")}
    assert sum(r["points"] for r in reversals) == 100


def test_a_refund_after_spending_takes_back_only_what_is_left(engine: sa.Engine) -> None:
    prog = new_programme(engine, allow_negative=False)
    award_order(engine, prog, "u1", "o1", 10_000, 100, "order:o1", T0)
    spend_points(engine, prog, "u1", 80, "spend", T0, "spend")
    # 30 yuan of 100 owes 30 points back; 20 are left: 20 are taken, 10 are forgiven
    assert refund_order(engine, prog, "u1", "o1", 3_000, "r1", T0).result["points"] == 20
    assert balances(engine, prog, "u1") == (0, 0, 0)
    award_points(engine, prog, "u1", 200, "later", T0, "later points")
    # the other 70 yuan owe their own 70; the 10 forgiven stay forgiven
    assert refund_order(engine, prog, "u1", "o1", 7_000, "r2", T0).result["points"] == 70
    assert balances(engine, prog, "u1") == (130, 130, 0)
    assert refund_order(engine, prog, "u1", "o1", 10_000, "r3", T0).result["points"] == 0
    assert balances(engine, prog, "u1") == (130, 130, 0)


def test_a_refund_after_spending_leaves_a_debt_that_awards_pay_first(engine: sa.Engine) -> None:
    prog = new_programme(engine, allow_negative=True)
    award_order(engine, prog, "u1", "o1", 10_000, 100, "order:o1", T0)
    spend_points(engine, prog, "u1", 80, "spend", T0, "spend")
    assert refund_order(engine, prog, "u1", "o1", 10_000, "r1", T0).result["points"] == 100
    assert balances(engine, prog, "u1") == (-80, -80, 80)
    assert points_summary(engine, prog, "u1", T0).available == 0
    # an award smaller than the debt only pays it: no lot
    award_points(engine, prog, "u1", 50, "a1", T0, "award")
    assert balances(engine, prog, "u1") == (-30, -30, 30)
    assert [lot[1:] for lot in lots_of(engine, prog, "u1")] == [(100, 0)]
    # the next pays the rest of it; its lot is smaller by the debt
    award_points(engine, prog, "u1", 100, "a2", T0, "award")
    assert balances(engine, prog, "u1") == (70, 70, 0)
    assert [lot[1:] for lot in lots_of(engine, prog, "u1")] == [(100, 0), (70, 70)]
    assert points_summary(engine, prog, "u1", T0).available == 70
    # the journal still shows each award whole: 100 + 50 + 100 in, 80 + 100 out
    rows = journal_of(engine, prog.app_id, "u1")
    assert sorted((r["kind"], r["points"]) for r in rows) == [
        ("earn", 50),
        ("earn", 100),
        ("earn", 100),
        ("reverse", 20),
        ("reverse", 80),
        ("spend", 80),
    ]


def test_a_refund_of_nothing_takes_nothing_and_is_not_counted(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    award_order(engine, prog, "u1", "o1", 10_000, 100, "order:o1", T0)
    assert refund_order(engine, prog, "u1", "o1", 0, "r0", T0).result["points"] == 0
    assert refund_order(engine, prog, "u1", "o1", -5_000, "r-", T0).result["points"] == 0
    assert refund_order(engine, prog, "u1", "o1", 5_000, "r1", T0).result["points"] == 50
    assert refund_order(engine, prog, "u1", "no-such-order", 5_000, "r2", T0).result["points"] == 0
    assert balances(engine, prog, "u1") == (50, 50, 0)


# --- 4. idempotency keys raced ---


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once, each on its own thread; each one's result or LoyaltyError."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except LoyaltyError as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_one_key_for_two_members_at_once_serves_only_the_first(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    for round_ in range(8):
        key = f"shared-{round_}"
        a, b = race(
            lambda key=key: award_points(engine, prog, "ua", 5, key, T0, "award"),
            lambda key=key: award_points(engine, prog, "ub", 5, key, T0, "award"),
        )
        won = [r for r in (a, b) if isinstance(r, Outcome)]
        lost = [r for r in (a, b) if isinstance(r, LoyaltyError)]
        # the member is part of the request: for the other member it is another request
        assert len(won) == 1 and not won[0].replayed
        assert [e.code for e in lost] == ["idempotency_key_reused"]
        winner = won[0].result["user_id"]
        again = award_points(engine, prog, winner, 5, key, T0, "award")
        assert (again.result, again.replayed) == (won[0].result, True)
    with engine.connect() as conn:
        j = points_journal.c
        per_key = Counter(
            conn.execute(sa.select(j.operation_key).where(j.app_id == prog.app_id)).scalars()
        )
        total = sum(journal_balance(conn, prog.app_id, u) for u in ("ua", "ub"))
    assert per_key == Counter({f"shared-{r}": 1 for r in range(8)})  # the loser wrote nothing
    assert total == 8 * 5


def test_one_key_sent_many_times_at_once_runs_once(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    outcomes = race(*[lambda: award_points(engine, prog, "u1", 7, "once", T0, "award")] * 20)
    assert all(isinstance(o, Outcome) for o in outcomes)
    assert sum(not o.replayed for o in outcomes) == 1
    assert {orjson_key(o.result) for o in outcomes} == {orjson_key(outcomes[0].result)}
    assert balances(engine, prog, "u1") == (7, 7, 0)


def orjson_key(result: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(result.items()))


def test_a_key_reused_for_another_request_is_refused(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    award_points(engine, prog, "u1", 10, "k", T0, "award")
    others: list[Callable[[], Any]] = [
        lambda: award_points(engine, prog, "u1", 11, "k", T0, "award"),  # other points
        lambda: award_points(engine, prog, "u1", 10, "k", T0, "other reason"),
        lambda: award_points(engine, prog, "u2", 10, "k", T0, "award"),  # other member
        lambda: spend_points(engine, prog, "u1", 10, "k", T0, "award"),  # other kind
        lambda: adjust_points(engine, prog, "u1", 10, "k", T0, "award"),
    ]
    assert [refusal(call) for call in others] == ["idempotency_key_reused"] * len(others)
    assert balances(engine, prog, "u1") == (10, 10, 0)
    with engine.connect() as conn:
        assert find_member(conn, prog.app_id, "u2") is None  # not even created
    # a refused request is not remembered: its key may succeed later
    spend = lambda: spend_points(engine, prog, "u1", 15, "s", T0, "spend")  # noqa: E731
    assert refusal(spend) == "insufficient_points"
    award_points(engine, prog, "u1", 5, "k2", T0, "award")
    assert spend().result == {"user_id": "u1", "points": 15, "balance": 0}


# --- 5. many writers on one member ---


def test_concurrent_awards_and_spends_keep_the_ledger_exact(engine: sa.Engine) -> None:
    prog = new_programme(engine)
    award_keys = [f"award-{i}" for i in range(100)]
    spend_keys = [f"spend-{i}" for i in range(50)]
    outcomes = race(
        *[(lambda k=k: award_points(engine, prog, "u1", 1, k, T0, "award")) for k in award_keys],
        *[(lambda k=k: spend_points(engine, prog, "u1", 1, k, T0, "spend")) for k in spend_keys],
    )
    awarded, spent = outcomes[:100], outcomes[100:]
    assert all(isinstance(o, Outcome) and not o.replayed for o in awarded)
    assert all(isinstance(o, Outcome) or o.code == "insufficient_points" for o in spent), spent
    successful = sum(isinstance(o, Outcome) for o in spent)
    assert balances(engine, prog, "u1") == (100 - successful, 100 - successful, 0)
    assert points_summary(engine, prog, "u1", T0).available == 100 - successful
    # the journal in the order it was written never shows a negative balance, and each
    # answer is the balance just after its own row: the writes ran one at a time
    j = points_journal.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(j.operation_key, j.debit, j.credit, j.points)
            .where(j.app_id == prog.app_id, j.user_id == "u1")
            .order_by(j.entry_id)
        ).all()
    running = 0
    balance_after: dict[str, int] = {}
    for row in rows:
        running += row.points if row.credit == MEMBER else -row.points
        assert running >= 0
        balance_after[row.operation_key] = running
    answered = {
        key: o.result["balance"]
        for key, o in zip(award_keys + spend_keys, outcomes, strict=True)
        if isinstance(o, Outcome)
    }
    assert len(rows) == 100 + successful
    assert balance_after == answered
