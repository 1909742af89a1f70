"""Coupons: issued from the playbook's templates within their limits, locked on an order,
redeemed or released; the points-for-coupon exchange; the coupons about to expire.

A coupon's terms are copied from its template when it is issued, so that a playbook change
does not alter coupons already in users' hands. Money is integer fen (0.01 yuan) here; JSON
shows yuan numbers.

Limits:
- `total_limit` and `budget_yuan` (face value issued) hold for the whole app, across members
  and server processes: the template's `coupon_stock` row is raised by one conditional UPDATE
  that only matches while both still allow the coupon, never by a read then a write.
- `per_user_limit` counts the member's coupons of the template; the member's row is locked by
  the caller, so one member's issues run one at a time.

The face value of a coupon is what it can take off at most: its `yuan`, or for a discount
coupon its `max_discount_yuan` (a discount coupon without one has no face value, and the
playbook refuses a budget on it).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError, not_found
from liucun.loyalty.ledger import Entry, available, debit
from liucun.loyalty.members import (
    INVITE_ALPHABET,
    Member,
    as_utc,
    find_member,
    insert_ignoring_conflicts,
)
from liucun.loyalty.operations import Outcome, run_once
from liucun.loyalty.programme import Programme
from liucun.playbook.loyalty import CouponTemplate, Exchange
from liucun.state.tables import coupon_stock, coupons

# no 0/O, 1/I/L: codes are read aloud and typed from screenshots
CODE_ALPHABET = INVITE_ALPHABET
CODE_LENGTH = 10
CODE_ATTEMPTS = 5
ORDER_ID_MAX = 200
MAX_ORDER_FEN = 1_000_000_000  # 10 million yuan: no order of a mini-program is larger
SOURCE_MAX = 200  # coupons.source
STATUSES = ("issued", "locked", "redeemed", "expired")
JUST_BEFORE = timedelta(microseconds=1)


# ------------------------------------------------------------------------------------ money


def to_fen(yuan: float | Decimal) -> int:
    """`yuan` in fen, rounded half up to the fen (a float is read as the decimal it shows)."""
    exact = Decimal(str(yuan)) if isinstance(yuan, float) else yuan
    return int((exact * 100).to_integral_value(rounding=ROUND_HALF_UP))


def to_yuan(fen: int | None) -> float | None:
    """`fen` as a yuan number (exact to the fen when printed), None stays None."""
    return None if fen is None else fen / 100


def yuan_text(fen: int) -> str:
    """`fen` as people write yuan: 50, 49.9, 0.05."""
    text = f"{fen / 100:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _fen_or_none(yuan: float | None) -> int | None:
    return None if yuan is None else to_fen(yuan)


# ---------------------------------------------------------------------------- terms and JSON


def terms_of(template: CouponTemplate) -> dict[str, Any]:
    """The columns of a coupon row that copy the template's terms (fen integers)."""
    return {
        "kind": template.kind,
        "value_fen": _fen_or_none(template.yuan),
        "min_spend_fen": _fen_or_none(template.min_spend_yuan),
        "percent_off": template.percent_off,
        "max_discount_fen": _fen_or_none(template.max_discount_yuan),
        "first_order_only": template.first_order_only,
    }


def face_value_fen(terms: Mapping[Any, Any]) -> int:
    """What a coupon can take off at most, in fen: its value, or a discount coupon's cap (0
    when it has none). Budgets count this."""
    if terms["kind"] == "discount":
        return int(terms["max_discount_fen"] or 0)
    return int(terms["value_fen"] or 0)


def _texts(prog: Programme, template_name: str) -> dict[str, str]:
    template = prog.rules.template(template_name)
    if template is not None:
        return {"zh": template.zh, "en": template.en}
    if template_name in prog.campaign_coupons:  # given by a campaign (the engage section)
        zh, en = prog.campaign_coupons[template_name]
        return {"zh": zh, "en": en}
    # the playbook dropped it: the coupon keeps its terms, not its name
    return {"zh": template_name, "en": template_name}


def template_json(template: CouponTemplate) -> dict[str, Any]:
    """What a user sees of a template before holding one of its coupons."""
    return {
        "template": template.name,
        "name": {"zh": template.zh, "en": template.en},
        "kind": template.kind,
        "value_yuan": template.yuan,
        "min_spend_yuan": template.min_spend_yuan,
        "percent_off": template.percent_off,
        "max_discount_yuan": template.max_discount_yuan,
        "valid_days": template.valid_days,
        "first_order_only": template.first_order_only,
    }


def coupon_status(row: Mapping[Any, Any], now: datetime) -> str:
    """issued, locked, redeemed or expired: an issued coupon whose validity ended by `now` is
    expired; a locked one stays locked (the order that holds it may still be paid)."""
    status = str(row["status"])
    if status == "issued" and as_utc(row["valid_until"]) <= now:
        return "expired"
    return status


def coupon_json(row: Mapping[Any, Any], prog: Programme, now: datetime) -> dict[str, Any]:
    """A coupon as the API shows it: yuan numbers, status as of `now`."""
    return {
        "coupon_id": row["coupon_id"],
        "code": row["code"],
        "template": row["template"],
        "name": _texts(prog, row["template"]),
        "kind": row["kind"],
        "value_yuan": to_yuan(row["value_fen"]),
        "min_spend_yuan": to_yuan(row["min_spend_fen"]),
        "max_discount_yuan": to_yuan(row["max_discount_fen"]),
        "percent_off": row["percent_off"],
        "first_order_only": bool(row["first_order_only"]),
        "valid_from": as_utc(row["valid_from"]),
        "valid_until": as_utc(row["valid_until"]),
        "status": coupon_status(row, now),
        "issued_at": as_utc(row["issued_at"]),
        "order_id": row["order_id"],
        "order_yuan": to_yuan(row["order_fen"]),
        "discount_yuan": to_yuan(row["discount_fen"]),
        "redeemed_at": row["redeemed_at"] and as_utc(row["redeemed_at"]),
    }


# ------------------------------------------------------------------------------------ issue


def find_template(prog: Programme, name: str) -> CouponTemplate:
    """The playbook's template `name`; 404 `unknown_coupon_template` if there is none."""
    template = prog.rules.template(name)
    if template is None:
        raise not_found("coupon template", name, "优惠券模板")
    return template


def _check_per_user_limit(
    conn: sa.Connection, prog: Programme, member: Member, template: CouponTemplate
) -> None:
    if template.per_user_limit is None:
        return
    c = coupons.c
    held = conn.execute(
        sa.select(sa.func.count()).where(
            c.app_id == prog.app_id, c.user_id == member.user_id, c.template == template.name
        )
    ).scalar_one()
    if held >= template.per_user_limit:
        raise LoyaltyError(
            "coupon_limit_reached",
            f"you already have {held} of the coupon {template.name!r}; "
            f"at most {template.per_user_limit} per user",
            f"您已领取 {held} 张该优惠券,每人限领 {template.per_user_limit} 张",
        )


def _take_stock(
    conn: sa.Connection, prog: Programme, template: CouponTemplate, face_fen: int
) -> None:
    """Count one more coupon of `template` (and its face value) in the app's stock, refusing
    when the total limit or the budget would be passed. One conditional UPDATE decides, so
    concurrent issues in any number of processes never pass either."""
    s = coupon_stock.c
    key = (s.app_id == prog.app_id, s.template == template.name)
    insert_ignoring_conflicts(
        conn,
        coupon_stock,
        {"app_id": prog.app_id, "template": template.name, "issued": 0, "face_fen": 0},
    )
    room = []
    if template.total_limit is not None:
        room.append(s.issued < template.total_limit)
    budget_fen = _fen_or_none(template.budget_yuan)
    if budget_fen is not None:
        room.append(s.face_fen + face_fen <= budget_fen)
    raised = conn.execute(
        coupon_stock.update()
        .where(*key, *room)
        .values(issued=s.issued + 1, face_fen=s.face_fen + face_fen)
    )
    if raised.rowcount == 1:
        return
    # refused: read the row only to say which limit stopped it
    issued = conn.execute(sa.select(s.issued).where(*key)).scalar_one()
    if template.total_limit is not None and issued >= template.total_limit:
        raise LoyaltyError(
            "coupon_sold_out",
            f"all {template.total_limit} coupons {template.name!r} have been given out",
            f"优惠券已领完(共 {template.total_limit} 张)",
        )
    raise LoyaltyError(
        "coupon_budget_exhausted",
        f"the budget of {yuan_text(budget_fen or 0)} yuan for coupons {template.name!r} is used up",
        f"该优惠券的发放预算({yuan_text(budget_fen or 0)} 元)已用完",
    )


def new_coupon_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _insert_with_fresh_code(conn: sa.Connection, row: dict[str, Any]) -> dict[str, Any]:
    """Insert the coupon under a random id and code, drawing again if either is taken (the
    unique constraints decide, so two processes cannot hand out one code)."""
    for _ in range(CODE_ATTEMPTS):
        drawn = {**row, "coupon_id": "cp_" + secrets.token_hex(8), "code": new_coupon_code()}
        if insert_ignoring_conflicts(conn, coupons, drawn):
            return drawn
    raise RuntimeError("could not issue the coupon: its codes kept colliding")


def issue_coupon(
    conn: sa.Connection,
    prog: Programme,
    member: Member,
    template_name: str,
    source_key: str,
    now: datetime,
) -> dict[str, Any]:
    """Issue one coupon of the playbook's `template_name` to the (locked) member, valid from
    `now` for the template's `valid_days`; `source_key` names what issued it. Refused with
    `unknown_coupon_template` (404), `coupon_limit_reached` (the member holds
    `per_user_limit` of them), `coupon_sold_out` (`total_limit` issued in all) or
    `coupon_budget_exhausted` (`budget_yuan` of face value issued). Returns `coupon_json`."""
    template = find_template(prog, template_name)
    terms = terms_of(template)
    _check_per_user_limit(conn, prog, member, template)
    _take_stock(conn, prog, template, face_value_fen(terms))
    row = _insert_with_fresh_code(
        conn,
        {
            "app_id": prog.app_id,
            "template": template.name,
            "user_id": member.user_id,
            **terms,
            "valid_from": now,
            "valid_until": now + timedelta(days=template.valid_days),
            "status": "issued",
            "source": source_key[:SOURCE_MAX],
            "issued_at": now,
            "order_id": None,
            "order_fen": None,
            "discount_fen": None,
            "locked_at": None,
            "redeemed_at": None,
            "playbook_revision": prog.revision,
        },
    )
    return coupon_json(row, prog, now)


# --------------------------------------------------------------------------------- discount


def discount_for(coupon: Mapping[Any, Any], order_fen: int) -> int:
    """The fen a coupon takes off an order of `order_fen`:
    - no_threshold: its value, at most the order;
    - spend_save: its value if the order reaches `min_spend`, else refused `below_threshold`;
    - discount: `percent_off` % of the order rounded down to the fen, at most
      `max_discount` when it has one."""
    kind = coupon["kind"]
    if kind == "no_threshold":
        return min(int(coupon["value_fen"]), order_fen)
    if kind == "spend_save":
        threshold = int(coupon["min_spend_fen"])
        if order_fen < threshold:
            raise LoyaltyError(
                "below_threshold",
                f"order of {yuan_text(order_fen)} yuan is below the coupon's threshold of "
                f"{yuan_text(threshold)} yuan",
                f"订单金额 {yuan_text(order_fen)} 元未达到优惠券门槛 {yuan_text(threshold)} 元",
            )
        return min(int(coupon["value_fen"]), order_fen)
    # the percentage as the decimal the playbook wrote: 7.1 is 71/10, not a binary float
    off = int(order_fen * Fraction(str(coupon["percent_off"])) / 100)
    cap = coupon["max_discount_fen"]
    return off if cap is None else min(off, int(cap))


# -------------------------------------------------------------------------------- lifecycle


def check_order(order_id: str, order_fen: int | None = None) -> None:
    """An order id of 1–200 characters and, if given, an amount of 0.01 yuan to 10 million."""
    if not order_id or len(order_id) > ORDER_ID_MAX:
        raise LoyaltyError(
            "bad_order",
            f"order ids are 1–{ORDER_ID_MAX} characters",
            f"订单号须为 1–{ORDER_ID_MAX} 个字符",
            status=422,
        )
    if order_fen is not None and not 1 <= order_fen <= MAX_ORDER_FEN:
        raise LoyaltyError(
            "bad_order",
            f"order amounts run from 0.01 to {yuan_text(MAX_ORDER_FEN)} yuan",
            f"订单金额须在 0.01 到 {yuan_text(MAX_ORDER_FEN)} 元之间",
            status=422,
        )


def _find_coupon(conn: sa.Connection, prog: Programme, user_id: str, ref: str) -> Mapping[Any, Any]:
    """The user's coupon by id or code; 404 `unknown_coupon` if the user holds none such."""
    c = coupons.c
    row = (
        conn.execute(
            sa.select(coupons).where(
                c.app_id == prog.app_id,
                c.user_id == user_id,
                sa.or_(c.coupon_id == ref, c.code == ref.upper()),
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise LoyaltyError(
            "unknown_coupon",
            f"you hold no coupon {ref!r}",
            f"您没有优惠券 {ref!r}",
            status=404,
        )
    return row


def _refuse_taken(row: Mapping[Any, Any], order_id: str) -> None:
    """Refuse a coupon redeemed already, or locked on another order."""
    if row["status"] == "redeemed":
        raise LoyaltyError(
            "coupon_redeemed",
            f"the coupon was already used on order {row['order_id']!r}",
            "该优惠券已使用",
        )
    if row["status"] == "locked" and row["order_id"] != order_id:
        raise LoyaltyError(
            "coupon_locked",
            f"the coupon is held by order {row['order_id']!r}: release it there first",
            "该优惠券已被另一笔订单占用,请先在该订单中释放",
        )
    if row["status"] not in ("issued", "locked"):
        raise LoyaltyError("coupon_void", "the coupon was withdrawn", "该优惠券已作废")


def _refuse_outside_window(prog: Programme, row: Mapping[Any, Any], now: datetime) -> None:
    start, end = as_utc(row["valid_from"]), as_utc(row["valid_until"])
    if start <= now < end:
        return
    shown = f"{prog.local(start):%Y-%m-%d %H:%M} – {prog.local(end):%Y-%m-%d %H:%M}"
    raise LoyaltyError(
        "outside_window",
        f"the coupon is valid {shown} ({prog.tz.key} time)",
        f"该优惠券的有效期为 {shown}",
    )


def _usable_discount(
    prog: Programme, member: Member, row: Mapping[Any, Any], order_fen: int, now: datetime
) -> int:
    """The discount of `row` on a new order of `order_fen` at `now`, or the refusal."""
    _refuse_outside_window(prog, row, now)
    if row["first_order_only"] and member.paid_orders > 0:
        raise LoyaltyError(
            "not_first_order",
            "the coupon is for a first order only, and you have paid an order before",
            "该优惠券仅限首单使用",
        )
    return discount_for(row, order_fen)


def _transition(
    conn: sa.Connection, row: Mapping[Any, Any], when: Any, values: dict[str, Any]
) -> Mapping[Any, Any]:
    """Write `values` to the coupon if it is still as `when` says (a conditional UPDATE on its
    status); the new row. A coupon changed under us (not expected while the member is locked)
    is refused rather than overwritten."""
    c = coupons.c
    done = conn.execute(
        coupons.update().where(c.coupon_id == row["coupon_id"], when).values(values)
    )
    if done.rowcount != 1:
        raise LoyaltyError(
            "coupon_changed",
            "the coupon changed while this request ran: try again",
            "优惠券状态已变化,请重试",
        )
    return {**row, **values}


def _lock_result(prog: Programme, row: Mapping[Any, Any], now: datetime) -> dict[str, Any]:
    order_fen, discount = int(row["order_fen"]), int(row["discount_fen"])
    return {
        "coupon": coupon_json(row, prog, now),
        "order_id": row["order_id"],
        "order_yuan": to_yuan(order_fen),
        "discount_yuan": to_yuan(discount),
        "pay_yuan": to_yuan(order_fen - discount),
    }


def claim_coupon(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    template_name: str,
    key: str,
    now: datetime,
    kind: str = "coupon_claim",
) -> Outcome:
    """Issue the user a coupon of `template_name` (within its limits: `issue_coupon`), once
    per `key`. `kind` names who asked: the user (coupon_claim) or an operator
    (coupon_issue)."""

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        return issue_coupon(conn, prog, member, template_name, f"{kind}:{key}", now)

    return run_once(engine, prog, user_id, key, kind, {"template": template_name}, now, work)


def lock_coupon(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    coupon_ref: str,
    order_id: str,
    order_fen: int,
    key: str,
    now: datetime,
) -> Outcome:
    """Hold the user's coupon (by id or code) for `order_id` of `order_fen` and answer its
    discount, once per `key`. Locking again on the same order recomputes for the new amount.
    Refused: `unknown_coupon` (404), `coupon_redeemed`, `coupon_locked` (another order holds
    it), `outside_window` (before valid_from or from valid_until on), `not_first_order` (a
    first-order coupon and the member has paid orders), `below_threshold`."""
    check_order(order_id, order_fen)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        row = _find_coupon(conn, prog, user_id, coupon_ref)
        _refuse_taken(row, order_id)
        discount = _usable_discount(prog, member, row, order_fen, now)
        c = coupons.c
        free_or_ours = sa.or_(
            c.status == "issued", sa.and_(c.status == "locked", c.order_id == order_id)
        )
        values = {
            "status": "locked",
            "order_id": order_id,
            "order_fen": order_fen,
            "discount_fen": discount,
            "locked_at": now,
        }
        return _lock_result(prog, _transition(conn, row, free_or_ours, values), now)

    request = {"coupon": coupon_ref, "order_id": order_id, "order_fen": order_fen}
    return run_once(engine, prog, user_id, key, "coupon_lock", request, now, work)


def redeem_coupon(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    coupon_ref: str,
    order_id: str,
    key: str,
    now: datetime,
    order_fen: int | None = None,
) -> Outcome:
    """Use the coupon on `order_id` (the order was paid), once per `key`. A coupon locked on
    that order is redeemed with the discount it was locked at, even past its validity (the
    lock was taken in time); one redeemed on that order already answers the same again. An
    unlocked coupon is locked and redeemed in one step when `order_fen` is given and it is
    usable (as `lock_coupon` checks); without `order_fen` it is refused `coupon_not_locked`."""
    check_order(order_id, order_fen)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        row = _find_coupon(conn, prog, user_id, coupon_ref)
        c = coupons.c
        if row["status"] == "redeemed" and row["order_id"] == order_id:
            return coupon_json(row, prog, now)
        _refuse_taken(row, order_id)
        if row["status"] == "locked":
            ours = sa.and_(c.status == "locked", c.order_id == order_id)
            return coupon_json(
                _transition(conn, row, ours, {"status": "redeemed", "redeemed_at": now}),
                prog,
                now,
            )
        if order_fen is None:
            raise LoyaltyError(
                "coupon_not_locked",
                "the coupon is not locked on this order: lock it first or send the order amount",
                "该优惠券未锁定在此订单上:请先锁定,或提供订单金额",
            )
        discount = _usable_discount(prog, member, row, order_fen, now)
        values = {
            "status": "redeemed",
            "order_id": order_id,
            "order_fen": order_fen,
            "discount_fen": discount,
            "locked_at": now,
            "redeemed_at": now,
        }
        return coupon_json(_transition(conn, row, c.status == "issued", values), prog, now)

    request = {"coupon": coupon_ref, "order_id": order_id, "order_fen": order_fen}
    return run_once(engine, prog, user_id, key, "coupon_redeem", request, now, work)


def release_coupon(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    coupon_ref: str,
    order_id: str,
    key: str,
    now: datetime,
) -> Outcome:
    """Give back a coupon locked on `order_id` (the order was cancelled): it is issued again,
    usable until its own validity ends. A coupon not locked answers as it is; one locked on
    another order is refused `coupon_locked`, one redeemed `coupon_redeemed`."""
    check_order(order_id)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        row = _find_coupon(conn, prog, user_id, coupon_ref)
        if row["status"] == "issued":
            return coupon_json(row, prog, now)
        _refuse_taken(row, order_id)
        c = coupons.c
        ours = sa.and_(c.status == "locked", c.order_id == order_id)
        values = {
            "status": "issued",
            "order_id": None,
            "order_fen": None,
            "discount_fen": None,
            "locked_at": None,
        }
        return coupon_json(_transition(conn, row, ours, values), prog, now)

    request = {"coupon": coupon_ref, "order_id": order_id}
    return run_once(engine, prog, user_id, key, "coupon_release", request, now, work)


# ---------------------------------------------------------------------------------- reading


def _status_filter(status: str, now: datetime) -> Any:
    c = coupons.c
    if status == "issued":
        return sa.and_(c.status == "issued", c.valid_until > now)
    if status == "expired":
        return sa.and_(c.status == "issued", c.valid_until <= now)
    return c.status == status


def user_coupons(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    now: datetime,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The user's coupons, newest first; `status` (issued, locked, redeemed, expired) as of
    `now` keeps only those."""
    c = coupons.c
    query = sa.select(coupons).where(c.app_id == prog.app_id, c.user_id == user_id)
    if status is not None:
        query = query.where(_status_filter(status, now))
    query = query.order_by(c.issued_at.desc(), c.coupon_id).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [coupon_json(r, prog, now) for r in rows]


def _stock(conn: sa.Connection, app_id: str) -> dict[str, tuple[int, int]]:
    s = coupon_stock.c
    rows = conn.execute(sa.select(s.template, s.issued, s.face_fen).where(s.app_id == app_id))
    return {r.template: (int(r.issued), int(r.face_fen)) for r in rows}


def in_stock(template: CouponTemplate, issued: int, face_fen: int) -> bool:
    """Whether one more coupon of `template` fits its total limit and budget."""
    face = face_value_fen(terms_of(template))
    budget = _fen_or_none(template.budget_yuan)
    return (template.total_limit is None or issued < template.total_limit) and (
        budget is None or face_fen + face <= budget
    )


def template_report(engine: sa.Engine, prog: Programme) -> list[dict[str, Any]]:
    """Each playbook template with its limits, the coupons and face value issued so far, the
    coupons redeemed, and how many more the total limit allows (None: no limit)."""
    c = coupons.c
    with engine.connect() as conn:
        stock = _stock(conn, prog.app_id)
        redeemed: dict[str, int] = {
            template: int(count)
            for template, count in conn.execute(
                sa.select(c.template, sa.func.count())
                .where(c.app_id == prog.app_id, c.status == "redeemed")
                .group_by(c.template)
            ).all()
        }
    report = []
    for template in prog.rules.coupons.templates:
        issued, face_fen = stock.get(template.name, (0, 0))
        limit = template.total_limit
        report.append(
            {
                **template_json(template),
                "total_limit": limit,
                "per_user_limit": template.per_user_limit,
                "budget_yuan": template.budget_yuan,
                "issued": issued,
                "face_issued_yuan": to_yuan(face_fen),
                "redeemed": redeemed.get(template.name, 0),
                "remaining": None if limit is None else max(limit - issued, 0),
                "in_stock": in_stock(template, issued, face_fen),
            }
        )
    return report


def expiring_coupons(
    engine: sa.Engine, prog: Programme, now: datetime, within_days: int | None = None
) -> list[dict[str, Any]]:
    """Issued coupons whose last usable day is one of the next `within_days` app-local days,
    today counted (default: the playbook's `coupons.expiry_reminder_days`): valid_until after
    `now` and at most the local midnight that begins day today + `within_days`. Each with
    `days_left`: local days from today to its last usable day (0: it ends today). Soonest
    first."""
    days = prog.rules.coupons.expiry_reminder_days if within_days is None else within_days
    today = prog.day(now)
    until = prog.start_of(today + timedelta(days=days)).astimezone(UTC)
    c = coupons.c
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(coupons)
                .where(
                    c.app_id == prog.app_id,
                    c.status == "issued",
                    c.valid_until > now,
                    c.valid_until <= until,
                )
                .order_by(c.valid_until, c.coupon_id)
            )
            .mappings()
            .all()
        )
    return [
        {
            "user_id": r["user_id"],
            "days_left": (prog.day(as_utc(r["valid_until"]) - JUST_BEFORE) - today).days,
            "coupon": coupon_json(r, prog, now),
        }
        for r in rows
    ]


# -------------------------------------------------------------------------------- exchanges


def find_exchange(prog: Programme, name: str) -> Exchange:
    """The playbook's exchange `name`; 404 `unknown_exchange` if there is none."""
    found = next((e for e in prog.rules.exchanges if e.name == name), None)
    if found is None:
        raise not_found("exchange", name, "积分兑换项")
    return found


def exchange_points(
    engine: sa.Engine,
    prog: Programme,
    user_id: str,
    exchange_name: str,
    key: str,
    now: datetime,
) -> Outcome:
    """Spend the exchange's points for its coupon, in one transaction, once per `key`: the
    coupon is issued (within its limits) and the points spent (journal rule
    `exchange:<name>`), or neither. Refused: `unknown_exchange` (404), the coupon's refusals,
    `insufficient_points`."""
    exchange = find_exchange(prog, exchange_name)

    def work(conn: sa.Connection, member: Member) -> dict[str, Any]:
        coupon = issue_coupon(conn, prog, member, exchange.coupon, f"exchange:{key}", now)
        entry = Entry(key, rule=f"exchange:{exchange.name}", reason=exchange.en)
        debit(conn, prog, member, exchange.points, entry, now, kind="spend")
        return {
            "exchange": exchange.name,
            "points": exchange.points,
            "balance": member.balance,
            "coupon": coupon,
        }

    request = {"exchange": exchange_name}
    return run_once(engine, prog, user_id, key, "exchange", request, now, work)


def exchange_catalogue(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> dict[str, Any]:
    """The exchanges of the playbook with their coupons, whether each is in stock, and the
    points the user can spend at `now`."""
    with engine.connect() as conn:
        member = find_member(conn, prog.app_id, user_id)
        points = 0 if member is None else available(conn, prog, member, now)
        stock = _stock(conn, prog.app_id)
    items = []
    for e in prog.rules.exchanges:
        template = find_template(prog, e.coupon)
        issued, face_fen = stock.get(template.name, (0, 0))
        items.append(
            {
                "name": e.name,
                "title": {"zh": e.zh, "en": e.en},
                "points": e.points,
                "coupon": template_json(template),
                "in_stock": in_stock(template, issued, face_fen),
                "affordable": points >= e.points,
            }
        )
    return {"available_points": points, "exchanges": items}
