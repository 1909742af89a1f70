"""Coupons: the discount arithmetic against a plain-Python reference; the total limit, the
per-user limit and the budget under concurrent claims; lock, redeem and release with their
refusals; idempotency keys; the points exchange (all or nothing); the expiring list at
local-midnight edges; the new-user pack; the HTTP endpoints with a user token.

Asia/Shanghai is UTC+8: 16:00Z is local midnight of the next date.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from liucun.loyalty import coupons as cp
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.ledger import journal_balance
from liucun.loyalty.members import lock_member, update_member
from liucun.loyalty.new_users import pack_status, welcome_pack
from liucun.loyalty.points import award_points
from liucun.loyalty.programme import Programme, programme_of
from liucun.playbook.loyalty import CouponTemplate, LoyaltyRules, NewUserPack, Reward
from liucun.playbook.store import apply_playbook
from liucun.state.apps import create_app as create_tenant
from liucun.state.apps import find_app
from liucun.state.db import open_state, write_transaction
from liucun.state.tables import coupon_stock, coupons, points_journal
from tests.loyalty_helpers import loyalty_server

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 local

# templates and exchanges added to the shipped ones for these tests
TEMPLATES: list[dict[str, Any]] = [
    {"name": "limited_50", "kind": "no_threshold", "yuan": 5, "total_limit": 50},
    {"name": "limited_1", "kind": "no_threshold", "yuan": 5, "total_limit": 1},
    {"name": "per_user_3", "kind": "no_threshold", "yuan": 2, "per_user_limit": 3},
    {"name": "budget_20", "kind": "no_threshold", "yuan": 6, "budget_yuan": 20},
    {"name": "save_10", "kind": "spend_save", "yuan": 10, "min_spend_yuan": 50},
    {"name": "pct_15", "kind": "discount", "percent_off": 15, "max_discount_yuan": 30},
    {"name": "short", "kind": "no_threshold", "yuan": 1, "valid_days": 2},
]
EXCHANGES: list[dict[str, Any]] = [
    {"name": "limited", "zh": "兑换限量券", "en": "Limited", "points": 100, "coupon": "limited_1"}
]


def playbook_text() -> str:
    """A playbook of only a `loyalty` section: the shipped templates and exchanges plus ours."""
    rules = LoyaltyRules()
    templates = [t.model_dump(exclude_none=True) for t in rules.coupons.templates]
    templates += [{"zh": t["name"], "en": t["name"], **t} for t in TEMPLATES]
    exchanges = [e.model_dump() for e in rules.exchanges] + EXCHANGES
    loyalty = {
        "coupons": {"templates": templates},
        "exchanges": exchanges,
        # members made here would get the pack's coupon: counts below are of ours alone
        "new_user_pack": {"enabled": False},
    }
    return yaml.safe_dump({"version": 1, "loyalty": loyalty}, allow_unicode=True)


@dataclass
class Shop:
    engine: sa.Engine
    prog: Programme

    def claim(self, user: str, template: str, key: str, now: datetime = NOW) -> dict[str, Any]:
        return cp.claim_coupon(self.engine, self.prog, user, template, key, now).result

    def lock(
        self, user: str, ref: str, order: str, fen: int, key: str, now: datetime = NOW
    ) -> dict[str, Any]:
        return cp.lock_coupon(self.engine, self.prog, user, ref, order, fen, key, now).result

    def redeem(
        self, user: str, ref: str, order: str, key: str, fen: int | None = None, now: datetime = NOW
    ) -> dict[str, Any]:
        return cp.redeem_coupon(self.engine, self.prog, user, ref, order, key, now, fen).result

    def release(self, user: str, ref: str, order: str, key: str) -> dict[str, Any]:
        return cp.release_coupon(self.engine, self.prog, user, ref, order, key, NOW).result

    def count(self, table: sa.Table, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(*where)
                ).scalar_one()
            )


@pytest.fixture
def shop(state_url: str) -> Iterator[Shop]:
    engine = open_state(state_url)
    creds = create_tenant(engine, "shop", TZ)
    apply_playbook(engine, creds.app_id, playbook_text())
    yield Shop(engine, programme_of(engine, find_app(engine, creds.app_id)))
    engine.dispose()


def as_json(value: Any) -> Any:
    """`value` as the JSON a replayed operation answers with (times as text)."""
    return orjson.loads(orjson.dumps(value))


def refusal(call: Callable[[], object]) -> LoyaltyError:
    with pytest.raises(LoyaltyError) as caught:
        call()
    return caught.value


def concurrently(n: int, task: Callable[[int], dict[str, Any]]) -> list[dict[str, Any] | str]:
    """Run task(0..n-1) on n threads released together; each result or its refusal code."""
    start = threading.Barrier(n, timeout=60)

    def run(i: int) -> dict[str, Any] | str:
        start.wait()
        try:
            return task(i)
        except LoyaltyError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


# ------------------------------------------------------------------------------- arithmetic


def reference_discount(kind: str, terms: dict[str, Any], order_fen: int) -> int | None:
    """The discount in fen written from the definitions with Decimal; None: below threshold."""
    if kind == "no_threshold":
        return min(terms["value_fen"], order_fen)
    if kind == "spend_save":
        return None if order_fen < terms["min_spend_fen"] else terms["value_fen"]
    off = (Decimal(order_fen) * Decimal(str(terms["percent_off"])) / 100).to_integral_value(
        rounding=ROUND_FLOOR
    )
    cap = terms["max_discount_fen"]
    return int(off) if cap is None else min(int(off), cap)


terms_strategy = st.one_of(
    st.builds(
        lambda v: {"kind": "no_threshold", "value_fen": v},
        st.integers(1, 10_000_000),
    ),
    st.builds(
        lambda v, extra: {"kind": "spend_save", "value_fen": v, "min_spend_fen": v + extra},
        st.integers(1, 1_000_000),
        st.integers(1, 10_000_000),
    ),
    st.builds(
        lambda p, cap: {"kind": "discount", "percent_off": p / 10, "max_discount_fen": cap},
        st.integers(1, 999),
        st.none() | st.integers(1, 10_000_000),
    ),
)


@given(terms=terms_strategy, order_fen=st.integers(1, cp.MAX_ORDER_FEN))
@settings(max_examples=60, deadline=None)
def test_discount_matches_the_reference(terms: dict[str, Any], order_fen: int) -> None:
    row = {"value_fen": None, "min_spend_fen": None, "percent_off": None, **terms}
    row.setdefault("max_discount_fen", None)
    expected = reference_discount(terms["kind"], row, order_fen)
    if expected is None:
        assert refusal(lambda: cp.discount_for(row, order_fen)).code == "below_threshold"
    else:
        assert cp.discount_for(row, order_fen) == expected
        assert 0 <= expected <= order_fen


def test_discount_examples() -> None:
    save = {"kind": "spend_save", "value_fen": 1000, "min_spend_fen": 5000}
    assert cp.discount_for(save, 5000) == 1000
    err = refusal(lambda: cp.discount_for(save, 4999))
    assert str(err) == "order of 49.99 yuan is below the coupon's threshold of 50 yuan"
    pct = {"kind": "discount", "percent_off": 7.1, "max_discount_fen": None}
    assert cp.discount_for(pct, 1000) == 71  # 7.1 % of 10 yuan, not 70 from a binary float
    assert cp.discount_for(pct, 999) == 70  # 70.929 fen, rounded down
    capped = {"kind": "discount", "percent_off": 15, "max_discount_fen": 3000}
    assert cp.discount_for(capped, 100_000) == 3000
    assert cp.discount_for({"kind": "no_threshold", "value_fen": 800}, 500) == 500


def test_money_in_fen() -> None:
    assert cp.to_fen(0.1) == 10 and cp.to_fen(19.99) == 1999 and cp.to_fen(0.005) == 1
    assert cp.to_fen(Decimal("12.345")) == 1235 and cp.to_fen(Decimal("12.344")) == 1234
    assert [cp.yuan_text(f) for f in (5000, 4999, 4990, 5)] == ["50", "49.99", "49.9", "0.05"]


def test_a_budget_needs_a_face_value() -> None:
    uncapped = {"name": "pct", "zh": "折", "en": "off", "kind": "discount", "percent_off": 10}
    with pytest.raises(ValidationError, match="needs max_discount_yuan"):
        CouponTemplate.model_validate({**uncapped, "budget_yuan": 100})
    capped = CouponTemplate.model_validate({**uncapped, "max_discount_yuan": 30})
    assert cp.face_value_fen(cp.terms_of(capped)) == 3000


# ----------------------------------------------------------------------------------- limits


def test_total_limit_holds_under_200_concurrent_claims(shop: Shop) -> None:
    results = concurrently(200, lambda i: shop.claim(f"user-{i}", "limited_50", f"claim-{i}"))
    issued = [r for r in results if isinstance(r, dict)]
    assert len(issued) == 50
    assert [r for r in results if not isinstance(r, dict)] == ["coupon_sold_out"] * 150
    c = coupons.c
    assert shop.count(coupons, c.template == "limited_50") == 50
    assert len({r["code"] for r in issued}) == 50  # every code its own
    with shop.engine.connect() as conn:
        stock = conn.execute(sa.select(coupon_stock)).mappings().one()
    assert (stock["issued"], stock["face_fen"]) == (50, 50 * 500)


def test_per_user_limit_holds_under_50_concurrent_claims(shop: Shop) -> None:
    results = concurrently(50, lambda i: shop.claim("solo", "per_user_3", f"solo-{i}"))
    assert sum(isinstance(r, dict) for r in results) == 3
    assert sorted(r for r in results if isinstance(r, str)) == ["coupon_limit_reached"] * 47
    assert shop.count(coupons, coupons.c.user_id == "solo") == 3
    # another user still gets theirs
    assert shop.claim("other", "per_user_3", "other-1")["template"] == "per_user_3"


def test_budget_caps_the_face_value_issued(shop: Shop) -> None:
    # 6 yuan each within a 20-yuan budget: 3 coupons (18 yuan); a 4th would pass it
    results = concurrently(20, lambda i: shop.claim(f"b-{i}", "budget_20", f"budget-{i}"))
    assert sum(isinstance(r, dict) for r in results) == 3
    assert sorted(r for r in results if isinstance(r, str)) == ["coupon_budget_exhausted"] * 17
    report = {t["template"]: t for t in cp.template_report(shop.engine, shop.prog)}
    assert report["budget_20"]["issued"] == 3
    assert report["budget_20"]["face_issued_yuan"] == 18
    assert report["budget_20"]["in_stock"] is False


def test_unknown_template_and_issued_terms(shop: Shop) -> None:
    err = refusal(lambda: shop.claim("u", "no_such", "k0"))
    assert (err.code, err.status) == ("unknown_coupon_template", 404)
    got = shop.claim("u", "save_10", "k1")
    assert got["code"].isalnum() and len(got["code"]) == cp.CODE_LENGTH
    assert not set(got["code"]) & set("01OIL")
    assert got["coupon_id"].startswith("cp_")
    assert (got["kind"], got["value_yuan"], got["min_spend_yuan"]) == ("spend_save", 10, 50)
    assert got["valid_from"] == NOW and got["valid_until"] == NOW + timedelta(days=30)
    assert got["status"] == "issued" and got["name"] == {"zh": "save_10", "en": "save_10"}
    with shop.engine.connect() as conn:
        row = conn.execute(sa.select(coupons)).mappings().one()
    assert (row["value_fen"], row["min_spend_fen"], row["source"]) == (
        1000,
        5000,
        "coupon_claim:k1",
    )
    assert row["playbook_revision"] == shop.prog.revision == 1


def test_the_same_key_ten_times_gives_one_coupon(shop: Shop) -> None:
    results = concurrently(10, lambda i: shop.claim("twice", "save_10", "same-key"))
    assert all(isinstance(r, dict) for r in results)
    assert len({r["coupon_id"] for r in results if isinstance(r, dict)}) == 1
    assert shop.count(coupons) == 1
    err = refusal(lambda: shop.claim("twice", "pct_15", "same-key"))
    assert err.code == "idempotency_key_reused"


# -------------------------------------------------------------------------------- lifecycle


def test_lock_then_redeem(shop: Shop) -> None:
    coupon = shop.claim("u", "save_10", "c1")
    locked = shop.lock("u", coupon["coupon_id"], "o1", 6000, "l1")
    assert (locked["discount_yuan"], locked["pay_yuan"], locked["order_yuan"]) == (10, 50, 60)
    assert locked["coupon"]["status"] == "locked"
    done = shop.redeem("u", coupon["coupon_id"], "o1", "r1")
    assert (done["status"], done["order_id"], done["discount_yuan"]) == ("redeemed", "o1", 10)
    again = shop.redeem("u", coupon["coupon_id"], "o1", "r2")  # another key, same order
    assert again == done
    assert refusal(lambda: shop.lock("u", coupon["code"], "o2", 6000, "l2")).code == (
        "coupon_redeemed"
    )
    assert refusal(lambda: shop.redeem("u", coupon["code"], "o2", "r3", 6000)).code == (
        "coupon_redeemed"
    )
    assert refusal(lambda: shop.release("u", coupon["code"], "o1", "x1")).code == (
        "coupon_redeemed"
    )


def test_lock_release_and_lock_on_another_order(shop: Shop) -> None:
    ref = shop.claim("u", "pct_15", "c1")["code"].lower()  # codes are read any case
    assert shop.lock("u", ref, "o1", 10_000, "l1")["discount_yuan"] == 15
    assert refusal(lambda: shop.lock("u", ref, "o2", 10_000, "l2")).code == "coupon_locked"
    assert refusal(lambda: shop.release("u", ref, "o2", "x1")).code == "coupon_locked"
    assert refusal(lambda: shop.redeem("u", ref, "o2", "r1")).code == "coupon_locked"
    # the same order again: locked again at its new amount (15% capped at 30 yuan)
    assert shop.lock("u", ref, "o1", 1_000_000, "l3")["discount_yuan"] == 30
    released = shop.release("u", ref, "o1", "x2")
    assert (released["status"], released["order_id"], released["discount_yuan"]) == (
        "issued",
        None,
        None,
    )
    assert shop.release("u", ref, "o1", "x3")["status"] == "issued"  # nothing left to release
    assert shop.lock("u", ref, "o2", 2_000, "l4")["discount_yuan"] == 3
    assert shop.redeem("u", ref, "o2", "r2")["status"] == "redeemed"


def test_lock_refusals(shop: Shop) -> None:
    save = shop.claim("u", "save_10", "c1")["coupon_id"]
    err = refusal(lambda: shop.lock("u", save, "o1", 4999, "l1"))
    assert err.code == "below_threshold" and "49.99" in str(err) and err.zh
    assert refusal(lambda: shop.lock("someone-else", save, "o1", 6000, "l2")).status == 404
    assert refusal(lambda: shop.lock("u", "cp_nothing", "o1", 6000, "l3")).code == (
        "unknown_coupon"
    )
    # the window: valid from NOW (inclusive) until NOW + 30 days (exclusive)
    until = NOW + timedelta(days=30)
    for when in (NOW - timedelta(seconds=1), until):
        err = refusal(lambda when=when: shop.lock("u", save, "o1", 6000, f"w{when}", when))
        assert err.code == "outside_window"
    last = until - timedelta(seconds=1)
    assert shop.lock("u", save, "o1", 6000, "l4", last)["discount_yuan"] == 10
    # a locked coupon is used at its discount even once its validity has ended
    late = shop.redeem("u", save, "o1", "r1", now=until + timedelta(days=1))
    assert late["status"] == "redeemed"


def test_first_order_only(shop: Shop) -> None:
    first = shop.claim("new", "first_order_10", "c1")["coupon_id"]
    assert refusal(lambda: shop.claim("new", "first_order_10", "c2")).code == (
        "coupon_limit_reached"
    )
    with write_transaction(shop.engine) as conn:
        update_member(conn, lock_member(conn, shop.prog, "new", NOW), paid_orders=1)
    err = refusal(lambda: shop.lock("new", first, "o1", 3000, "l1"))
    assert err.code == "not_first_order"
    with write_transaction(shop.engine) as conn:
        update_member(conn, lock_member(conn, shop.prog, "new", NOW), paid_orders=0)
    assert shop.lock("new", first, "o1", 3000, "l2")["discount_yuan"] == 10


def test_redeem_without_a_lock(shop: Shop) -> None:
    ref = shop.claim("u", "save_10", "c1")["coupon_id"]
    assert refusal(lambda: shop.redeem("u", ref, "o1", "r1")).code == "coupon_not_locked"
    assert refusal(lambda: shop.redeem("u", ref, "o1", "r2", 100)).code == "below_threshold"
    done = shop.redeem("u", ref, "o1", "r3", 5000)
    assert (done["status"], done["discount_yuan"], done["order_yuan"]) == ("redeemed", 10, 50)


def test_refused_requests_change_nothing(shop: Shop) -> None:
    ref = shop.claim("u", "save_10", "c1")["coupon_id"]
    refusal(lambda: shop.lock("u", ref, "o1", 100, "l1"))
    with shop.engine.connect() as conn:
        row = conn.execute(sa.select(coupons)).mappings().one()
    assert (row["status"], row["order_id"]) == ("issued", None)
    # a refused key is not remembered: it may succeed later
    assert shop.lock("u", ref, "o1", 100_000, "l1")["discount_yuan"] == 10


def test_status_filter_and_expiry(shop: Shop) -> None:
    a = shop.claim("u", "short", "c1")["coupon_id"]
    b = shop.claim("u", "save_10", "c2")["coupon_id"]
    shop.lock("u", b, "o1", 6000, "l1")
    later = NOW + timedelta(days=2)  # `short` ends exactly then
    seen = {
        c["coupon_id"]: c["status"] for c in cp.user_coupons(shop.engine, shop.prog, "u", later)
    }
    assert seen == {a: "expired", b: "locked"}
    expired = cp.user_coupons(shop.engine, shop.prog, "u", later, "expired")
    assert [c["coupon_id"] for c in expired] == [a]
    assert cp.user_coupons(shop.engine, shop.prog, "u", later, "issued") == []
    before = cp.user_coupons(shop.engine, shop.prog, "u", later - timedelta(seconds=1), "issued")
    assert [c["coupon_id"] for c in before] == [a]


# -------------------------------------------------------------------------------- exchanges


def test_exchange_spends_exactly_the_points(shop: Shop) -> None:
    award_points(shop.engine, shop.prog, "u", 250, "award-1", NOW, "test")
    done = cp.exchange_points(shop.engine, shop.prog, "u", "points_5", "x1", NOW).result
    assert (done["points"], done["balance"], done["coupon"]["template"]) == (100, 150, "points_5")
    again = cp.exchange_points(shop.engine, shop.prog, "u", "points_5", "x1", NOW)
    assert again.replayed and again.result == as_json(done)
    with shop.engine.connect() as conn:
        assert journal_balance(conn, shop.prog.app_id, "u") == 150
        j = points_journal.c
        spent = conn.execute(sa.select(j.points, j.rule).where(j.kind == "spend")).all()
    assert [tuple(r) for r in spent] == [(100, "exchange:points_5")]
    assert shop.count(coupons, coupons.c.user_id == "u") == 1


def test_exchange_is_all_or_nothing(shop: Shop) -> None:
    for user in ("a", "b"):
        award_points(shop.engine, shop.prog, user, 300, f"award-{user}", NOW, "test")
    cp.exchange_points(shop.engine, shop.prog, "a", "limited", "xa", NOW)
    err = refusal(lambda: cp.exchange_points(shop.engine, shop.prog, "b", "limited", "xb", NOW))
    assert err.code == "coupon_sold_out"
    with shop.engine.connect() as conn:
        assert journal_balance(conn, shop.prog.app_id, "b") == 300
    assert shop.count(points_journal, points_journal.c.user_id == "b") == 1  # the award only
    award_points(shop.engine, shop.prog, "poor", 99, "award-poor", NOW, "test")
    err = refusal(lambda: cp.exchange_points(shop.engine, shop.prog, "poor", "points_5", "xp", NOW))
    assert err.code == "insufficient_points"
    assert shop.count(coupons, coupons.c.user_id == "poor") == 0
    err = refusal(lambda: cp.exchange_points(shop.engine, shop.prog, "a", "nope", "xn", NOW))
    assert (err.code, err.status) == ("unknown_exchange", 404)
    catalogue = cp.exchange_catalogue(shop.engine, shop.prog, "b", NOW)
    items = {e["name"]: e for e in catalogue["exchanges"]}
    assert catalogue["available_points"] == 300
    assert items["limited"]["in_stock"] is False and items["points_5"]["affordable"] is True


# --------------------------------------------------------------------------------- expiring


def last_usable_day(valid_until: datetime) -> date:
    """Reference: the local date of the coupon's last valid second."""
    return (valid_until - timedelta(seconds=1)).astimezone(ZONE).date()


def test_expiring_at_local_midnight_edges(shop: Shop) -> None:
    # `short` is valid 2 days: issue each coupon 2 days before the end we want
    ends = {
        "ends_at_midnight_21": datetime(2026, 11, 20, 16, 0, tzinfo=UTC),  # local 11-21 00:00
        "ends_at_midnight_23": datetime(2026, 11, 22, 16, 0, tzinfo=UTC),  # local 11-23 00:00
        "ends_just_after": datetime(2026, 11, 22, 16, 0, 1, tzinfo=UTC),
        "ends_far": datetime(2026, 11, 27, 3, 0, tzinfo=UTC),
    }
    ids = {}
    for user, end in ends.items():
        ids[user] = shop.claim(user, "short", f"k-{user}", end - timedelta(days=2))["coupon_id"]
    issued_at = ends["ends_at_midnight_23"] - timedelta(days=2)
    locked = shop.claim("locker", "short", "k-locker", issued_at)  # locked: not reminded
    shop.lock("locker", locked["coupon_id"], "o1", 500, "l-locker", issued_at)

    def listed(now: datetime, days: int | None = 3) -> dict[str, int]:
        return {
            e["user_id"]: e["days_left"]
            for e in cp.expiring_coupons(shop.engine, shop.prog, now, days)
        }

    def reference(now: datetime, days: int) -> dict[str, int]:
        today = now.astimezone(ZONE).date()
        out = {}
        for user, end in ends.items():
            left = (last_usable_day(end) - today).days
            if end > now and left < days:
                out[user] = left
        return out

    just_before = datetime(2026, 11, 20, 15, 59, 59, tzinfo=UTC)  # local 11-20 23:59:59
    midnight = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # local 11-21 00:00
    assert listed(just_before) == {"ends_at_midnight_21": 0, "ends_at_midnight_23": 2}
    assert listed(midnight) == {"ends_at_midnight_23": 1, "ends_just_after": 2}
    assert listed(midnight, None) == listed(midnight)  # the playbook's 3 days
    for now in (just_before, midnight, NOW, datetime(2026, 11, 25, 1, tzinfo=UTC)):
        for days in (1, 3, 7):
            assert listed(now, days) == reference(now, days), (now, days)
    entry = cp.expiring_coupons(shop.engine, shop.prog, midnight, 2)[0]
    assert entry["coupon"]["coupon_id"] == ids["ends_at_midnight_23"]


# --------------------------------------------------------------------------- new-user pack


def with_pack(prog: Programme, **pack: Any) -> Programme:
    rules = prog.rules.model_copy(update={"new_user_pack": NewUserPack(**pack)})
    return dataclasses.replace(prog, rules=rules)


def test_welcome_pack_within_its_days(shop: Shop) -> None:
    packed = with_pack(shop.prog, enabled=True)
    joined = datetime(2026, 11, 13, 16, 0, tzinfo=UTC)  # local 11-14 00:00: day 1
    with write_transaction(shop.engine) as conn:
        member = lock_member(conn, shop.prog, "newbie", joined)
        assert member.created
        granted = welcome_pack(conn, packed, member, joined)
    assert [(g.kind, g.coupon and g.coupon["template"]) for g in granted] == [
        ("new_user", "first_order_10")
    ]
    assert granted[0].reward_key == "new_user:newbie:0"
    day_7 = datetime(2026, 11, 20, 15, 59, 59, tzinfo=UTC)  # local 11-20 23:59:59
    with write_transaction(shop.engine) as conn:
        member = lock_member(conn, shop.prog, "newbie", day_7)
        assert welcome_pack(conn, packed, member, day_7) == []  # given once
    status = pack_status(shop.engine, packed, "newbie", day_7)
    assert status["within_days"] and status["last_day"] == date(2026, 11, 20)
    assert status["rewards"][0]["granted"] and status["rewards"][0]["coupon_id"]
    day_8 = day_7 + timedelta(seconds=1)
    assert not pack_status(shop.engine, packed, "newbie", day_8)["within_days"]


def test_a_new_member_gets_the_pack_on_first_sight(shop: Shop) -> None:
    packed = with_pack(shop.prog, enabled=True)
    for _ in range(3):  # created once, given once
        with write_transaction(shop.engine) as conn:
            lock_member(conn, packed, "fresh", NOW)
    c = coupons.c
    assert shop.count(coupons, c.user_id == "fresh", c.template == "first_order_10") == 1


def test_welcome_pack_edges(shop: Shop) -> None:
    joined = datetime(2026, 11, 13, 16, 0, tzinfo=UTC)
    day_8 = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # local 11-21 00:00
    with write_transaction(shop.engine) as conn:
        lock_member(conn, shop.prog, "late", joined)
    with write_transaction(shop.engine) as conn:
        late = lock_member(conn, shop.prog, "late", day_8)
        assert welcome_pack(conn, with_pack(shop.prog, enabled=True), late, day_8) == []
    off = with_pack(shop.prog, enabled=False)
    with write_transaction(shop.engine) as conn:
        assert welcome_pack(conn, off, lock_member(conn, off, "off", NOW), NOW) == []
    assert shop.count(coupons) == 0


def test_welcome_pack_skips_a_sold_out_coupon(shop: Shop) -> None:
    shop.claim("first", "limited_1", "k1")  # the last one
    prog = with_pack(shop.prog, rewards=[Reward(points=20), Reward(coupon="limited_1", points=5)])
    with write_transaction(shop.engine) as conn:
        member = lock_member(conn, shop.prog, "newbie", NOW)
        granted = welcome_pack(conn, prog, member, NOW)
        assert member.balance == 20  # the skipped reward's 5 points undone here too
    assert [(g.points, g.coupon) for g in granted] == [(20, None)]
    with shop.engine.connect() as conn:
        assert journal_balance(conn, prog.app_id, "newbie") == 20
    status = pack_status(shop.engine, prog, "newbie", NOW)
    assert [r["granted"] for r in status["rewards"]] == [True, False]


# ------------------------------------------------------------------------------------- HTTP


@pytest.fixture
def api(tmp_path: Path, state_url: str) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    """A test server with the shop, its playbook and a token for user `u1` (120 points)."""
    with loyalty_server(tmp_path, state_url, NOW, playbook_text()) as srv:
        state = srv.runtime.state
        prog = programme_of(state, find_app(state, srv.creds.app_id))
        award_points(state, prog, "u1", 120, "a1", NOW, "test")
        yield srv.client, srv.user_headers("u1"), srv.creds.admin_token


def test_http_client_endpoints(api: tuple[TestClient, dict[str, str], str]) -> None:
    client, auth, _ = api
    assert client.get("/v1/loyalty/coupons").status_code == 401
    assert client.post("/v1/loyalty/coupons/claim", json={"template": "save_10"}).status_code == 401
    r = client.post("/v1/loyalty/coupons/claim", json={"template": "save_10"}, headers=auth)
    assert r.status_code == 422 and "Idempotency-Key" in r.text

    def post(path: str, body: dict[str, Any] | None, key: str) -> Any:
        return client.post(path, json=body, headers={**auth, "Idempotency-Key": key})

    coupon = post("/v1/loyalty/coupons/claim", {"template": "save_10"}, "k1").json()
    assert coupon["value_yuan"] == 10 and coupon["status"] == "issued"
    assert post("/v1/loyalty/coupons/claim", {"template": "save_10"}, "k1").json() == coupon
    missing = post("/v1/loyalty/coupons/claim", {"template": "nope"}, "k2")
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "unknown_coupon_template"
    ref = coupon["coupon_id"]
    for bad in (12.345, 0, -1, 0.001, 1e12, "x"):
        r = post(f"/v1/loyalty/coupons/{ref}/lock", {"order_id": "o1", "order_yuan": bad}, "b")
        assert r.status_code == 422, bad
    below = post(f"/v1/loyalty/coupons/{ref}/lock", {"order_id": "o1", "order_yuan": 49.99}, "l0")
    assert below.status_code == 409 and below.json()["detail"]["code"] == "below_threshold"
    locked = post(f"/v1/loyalty/coupons/{ref}/lock", {"order_id": "o1", "order_yuan": 60.5}, "l1")
    assert locked.status_code == 200
    assert (locked.json()["discount_yuan"], locked.json()["pay_yuan"]) == (10, 50.5)
    redeemed = post(f"/v1/loyalty/coupons/{ref}/redeem", {"order_id": "o1"}, "r1").json()
    assert redeemed["status"] == "redeemed" and redeemed["order_yuan"] == 60.5
    gone = post(f"/v1/loyalty/coupons/{ref}/release", {"order_id": "o1"}, "x1")
    assert gone.status_code == 409 and gone.json()["detail"]["code"] == "coupon_redeemed"
    other = post("/v1/loyalty/coupons/claim", {"template": "pct_15"}, "k3").json()["code"]
    post(f"/v1/loyalty/coupons/{other}/lock", {"order_id": "o2", "order_yuan": 20}, "l2")
    released = post(f"/v1/loyalty/coupons/{other}/release", {"order_id": "o2"}, "x2").json()
    assert released["status"] == "issued"
    listed = client.get("/v1/loyalty/coupons", params={"status": "redeemed"}, headers=auth).json()
    assert [c["coupon_id"] for c in listed] == [ref]
    assert len(client.get("/v1/loyalty/coupons", headers=auth).json()) == 2
    assert (
        client.get("/v1/loyalty/coupons", params={"status": "x"}, headers=auth).status_code == 422
    )

    catalogue = client.get("/v1/loyalty/exchanges", headers=auth).json()
    assert catalogue["available_points"] == 120
    swapped = post("/v1/loyalty/exchanges/points_5", None, "e1")
    assert swapped.status_code == 200 and swapped.json()["balance"] == 20
    poor = post("/v1/loyalty/exchanges/points_5", None, "e2")
    assert poor.status_code == 409 and poor.json()["detail"]["code"] == "insufficient_points"
    assert post("/v1/loyalty/exchanges/nope", None, "e3").status_code == 404

    pack = client.get("/v1/loyalty/new-user-pack", headers=auth).json()
    # the fixture's playbook turns the pack off: listed, never granted
    assert pack["enabled"] is False and pack["rewards"][0]["granted"] is False
    assert pack["rewards"][0]["coupon"]["template"] == "first_order_10"


def test_http_admin_endpoints(api: tuple[TestClient, dict[str, str], str]) -> None:
    client, _, admin_token = api
    admin = {"Authorization": f"Bearer {admin_token}"}
    base = "/admin/v1/apps/shop/loyalty/coupons"
    assert client.get(f"{base}/templates").status_code == 401
    body = {"user_id": "u9", "template": "short"}
    assert client.post(f"{base}/issue", json=body, headers=admin).status_code == 422
    issued = client.post(f"{base}/issue", json=body, headers={**admin, "Idempotency-Key": "i1"})
    assert issued.status_code == 200 and issued.json()["template"] == "short"
    sold = {**body, "template": "limited_1"}
    client.post(f"{base}/issue", json=sold, headers={**admin, "Idempotency-Key": "i2"})
    again = client.post(f"{base}/issue", json=sold, headers={**admin, "Idempotency-Key": "i3"})
    assert again.status_code == 409 and again.json()["detail"]["code"] == "coupon_sold_out"
    templates = {t["template"]: t for t in client.get(f"{base}/templates", headers=admin).json()}
    assert (templates["short"]["issued"], templates["limited_1"]["remaining"]) == (1, 0)
    assert templates["limited_50"]["remaining"] == 50
    # `short` ends 2 days after NOW (10:00 local 11-22): within 3 local days, not within 2
    soon = client.get(f"{base}/expiring", params={"days": 3}, headers=admin).json()
    assert [(e["user_id"], e["days_left"]) for e in soon] == [("u9", 2)]
    assert client.get(f"{base}/expiring", params={"days": 2}, headers=admin).json() == []
    assert client.get(f"{base}/expiring", params={"days": 0}, headers=admin).status_code == 422
