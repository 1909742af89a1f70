"""Buyers' purchase histories as BG/NBD reads them, (x, t_x, T) from `order_paid`; the report.

A transaction is a person's app-local day with at least one paid order: several orders of one
person on one day are one transaction (the convention that reproduces Fader, Hardie & Lee's
CDNOW figures, docs/bgnbd.md). A person is a user id with the anonymous ids linked to it, as in
every metric. Times are in weeks (days / 7), measured between app-local days.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from liucun.analytics.activity_source import latest_day
from liucun.events.standard import ORDER_PAID_EVENT
from liucun.lifecycle.bgnbd import (
    MIN_BUYERS,
    BGNBDParams,
    expected_purchases,
    fit_bgnbd,
    probability_alive,
)
from liucun.warehouse.dialects import Dialect
from liucun.warehouse.queries import event_person, event_person_join, person_names_sql
from liucun.warehouse.store import EventStore

DAYS_PER_WEEK = 7


def _order_days_sql(d: Dialect, timezone: str) -> str:
    """(person_id, day, paid): each person's app-local days with a paid order, on or before
    parameter `last`, with the day's order amounts added up."""
    day = d.local_date("e.ts", d.quote(timezone))
    return f"""
    SELECT {event_person()} AS person_id, {day} AS day, sum(e.amount) AS paid
    FROM events e
    {event_person_join(d, d.param("app"))}
    WHERE e.app_id = {d.param("app")} AND e.event = {d.param("event")}
      AND {day} <= {d.param("last")}
    GROUP BY {event_person()}, {day}
    """


def _weeks(first: pa.Array | pa.ChunkedArray, last: pa.Array | pa.ChunkedArray) -> pa.Array:
    days = pc.days_between(first.cast(pa.date32()), last.cast(pa.date32()))
    return pc.divide(days.cast(pa.float64()), float(DAYS_PER_WEEK))


def buyer_summary(store: EventStore, app_id: str, timezone: str, calibration_end: date) -> pa.Table:
    """One row per person who paid an order on or before `calibration_end` (an app-local day
    in `timezone`), sorted by person:

    - `person`: the user id (an anonymous buyer later identified is their user), else the id
      the orders were sent under;
    - `x`: repeat transactions, the days with a paid order after the first such day, up to
      `calibration_end`;
    - `t_x`: weeks from the first to the last of those days (0 when x = 0);
    - `T`: weeks from the first day to `calibration_end`;
    - `monetary`: the mean amount of the repeat transactions (a day's orders added up), null
      when x = 0;
    - `amount`: everything the person paid up to `calibration_end`; `first_day`: the first
      purchase day.

    Orders after `calibration_end` are not read.
    """
    d = store.dialect
    sql = f"""
    WITH days AS {d.materialized} ({_order_days_sql(d, timezone)})
    SELECT names.person AS person, b.first_day AS first_day, b.last_day AS last_day,
           b.days AS days, b.amount AS amount, b.amount - b.first_paid AS repeat_paid
    FROM (
        SELECT person_id, min(day) AS first_day, max(day) AS last_day, count(*) AS days,
               sum(paid) AS amount, {d.first_by("paid", "day")} AS first_paid
        FROM days GROUP BY person_id
    ) b
    JOIN ({person_names_sql(d.param("app"))}) names ON names.person_id = b.person_id
    """
    params = {"app": app_id, "event": ORDER_PAID_EVENT, "last": calibration_end}
    rows = store.query(sql, params).sort_by("person")
    x = pc.subtract(rows.column("days").cast(pa.int64()), 1)
    # exact in SQL (decimals), one rounding to a float here
    repeat_paid = rows.column("repeat_paid").cast(pa.float64())
    end = pa.array([calibration_end] * rows.num_rows, pa.date32())
    return pa.table(
        {
            "person": rows.column("person").cast(pa.string()),
            "x": x,
            "t_x": _weeks(rows.column("first_day"), rows.column("last_day")),
            "T": _weeks(rows.column("first_day"), end),
            # x = 0 divides by zero: null, as there is no repeat purchase to average
            "monetary": pc.if_else(
                pc.greater(x, 0),
                pc.divide(repeat_paid, pc.max_element_wise(x, 1).cast(pa.float64())),
                pa.scalar(None, pa.float64()),
            ),
            "amount": rows.column("amount").cast(pa.decimal128(38, 2)),
            "first_day": rows.column("first_day").cast(pa.date32()),
        }
    )


def holdout_purchases(
    store: EventStore, app_id: str, timezone: str, calibration_end: date, holdout_end: date
) -> pa.Table:
    """(person, purchases): for each person of `buyer_summary(…, calibration_end)`, in the
    same order, the transactions (days with a paid order) after `calibration_end` and on or
    before `holdout_end` — what BG/NBD's E[Y(t)] forecasts."""
    if holdout_end < calibration_end:
        raise ValueError(
            f"the holdout end {holdout_end} is before the calibration end {calibration_end}"
        )
    d = store.dialect
    calibration = d.param("calibration")
    sql = f"""
    WITH days AS {d.materialized} ({_order_days_sql(d, timezone)})
    SELECT names.person AS person, b.purchases AS purchases
    FROM (
        SELECT person_id, sum(CASE WHEN day > {calibration} THEN 1 ELSE 0 END) AS purchases
        FROM days GROUP BY person_id HAVING min(day) <= {calibration}
    ) b
    JOIN ({person_names_sql(d.param("app"))}) names ON names.person_id = b.person_id
    """
    params = {
        "app": app_id,
        "event": ORDER_PAID_EVENT,
        "last": holdout_end,
        "calibration": calibration_end,
    }
    rows = store.query(sql, params).sort_by("person")
    return pa.table(
        {
            "person": rows.column("person").cast(pa.string()),
            "purchases": rows.column("purchases").cast(pa.int64()),
        }
    )


# --------------------------------------------------------------------------- the app's report

# The buyers a report counts as the most valuable: the top fifth by amount paid up to the
# calibration end (the Pareto cut). It only chooses whom to list, no one is labelled by it.
VALUABLE_SHARE = 0.2


class BGNBDError(ValueError):
    """The report cannot be made for these dates or this app; the message says what to fix."""


@dataclass(frozen=True)
class AtRiskBuyer:
    """A valuable buyer and what BG/NBD says of them (`expected_purchases`: in the holdout
    weeks, when there is a holdout)."""

    person: str
    x: int
    t_x: float
    T: float
    amount: Decimal
    monetary: float | None
    p_alive: float
    expected_purchases: float | None


@dataclass(frozen=True)
class HoldoutCheck:
    """The model's forecast of the buyers' repeat transactions in the holdout weeks (the sum
    of their E[Y(weeks)]) beside the transactions they made."""

    weeks: float
    forecast: float
    actual: int


@dataclass(frozen=True)
class BGNBDReport:
    app_id: str
    calibration_end: date
    holdout_end: date | None
    buyers: int
    repeat_buyers: int
    params: BGNBDParams
    at_risk: list[AtRiskBuyer]
    holdout: HoldoutCheck | None


def _check_dates(
    store: EventStore, app_id: str, calibration_end: date, holdout_end: date | None
) -> None:
    if holdout_end is not None and holdout_end <= calibration_end:
        raise BGNBDError(
            f"the holdout end {holdout_end} must be after the calibration end {calibration_end}"
        )
    latest = latest_day(store, app_id)
    if latest is None:
        raise BGNBDError("the app has no events yet")
    for name, day in (("calibration end", calibration_end), ("holdout end", holdout_end)):
        if day is not None and day > latest:
            raise BGNBDError(
                f"the {name} {day} is after the app's data (its latest day is {latest}); "
                f"choose a day on or before {latest}"
            )


def bgnbd_report(
    store: EventStore,
    app_id: str,
    timezone: str,
    calibration_end: date,
    holdout_end: date | None = None,
    top: int = 10,
    on_step: Callable[[str], None] | None = None,
) -> BGNBDReport:
    """BG/NBD fitted on the app's buyers up to `calibration_end`; the `top` buyers with the
    lowest P(alive) among the most valuable (`VALUABLE_SHARE` of the buyers by amount paid,
    at least `top`; ties by amount, then person); with `holdout_end`, the forecast of the
    holdout's repeat transactions beside the actual count. `on_step` hears each step begin."""
    step = on_step or (lambda _: None)
    _check_dates(store, app_id, calibration_end, holdout_end)
    step("读取买家 reading buyers")
    summary = buyer_summary(store, app_id, timezone, calibration_end)
    x, t_x, big_t = (summary.column(c).to_numpy() for c in ("x", "t_x", "T"))
    if summary.num_rows < MIN_BUYERS:
        raise BGNBDError(
            f"BG/NBD needs at least {MIN_BUYERS} buyers to fit; the app has "
            f"{summary.num_rows} who paid by {calibration_end}: choose a later calibration end"
        )
    step("拟合 fitting BG/NBD")
    try:
        params = fit_bgnbd(x, t_x, big_t)
    except ValueError as exc:
        raise BGNBDError(f"{exc} (buyers who paid by {calibration_end})") from None
    alive = probability_alive(params, x, t_x, big_t)

    holdout, expected = None, None
    if holdout_end is not None:
        step("留出期 holdout")
        weeks = (holdout_end - calibration_end).days / DAYS_PER_WEEK
        expected = expected_purchases(params, weeks, x, t_x, big_t)
        actual = holdout_purchases(store, app_id, timezone, calibration_end, holdout_end)
        # the same persons in the same order: both read the buyers up to calibration_end
        assert actual.column("person").equals(summary.column("person"))
        total = int(pc.sum(actual.column("purchases")).as_py() or 0)
        holdout = HoldoutCheck(weeks, float(expected.sum()), total)

    persons = summary.column("person").to_pylist()
    amounts = summary.column("amount").to_pylist()
    monetary = summary.column("monetary").to_pylist()
    by_value = sorted(range(len(persons)), key=lambda i: (-amounts[i], persons[i]))
    valuable = by_value[: max(top, math.ceil(VALUABLE_SHARE * len(persons)))]
    listed = sorted(valuable, key=lambda i: (alive[i], -amounts[i], persons[i]))[:top]
    at_risk = [
        AtRiskBuyer(
            persons[i],
            int(x[i]),
            float(t_x[i]),
            float(big_t[i]),
            amounts[i],
            monetary[i],
            float(alive[i]),
            None if expected is None else float(expected[i]),
        )
        for i in listed
    ]
    return BGNBDReport(
        app_id,
        calibration_end,
        holdout_end,
        summary.num_rows,
        int((x > 0).sum()),
        params,
        at_risk,
        holdout,
    )
