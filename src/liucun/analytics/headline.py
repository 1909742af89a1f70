"""The demo's headline figures: a month of activity read from the daily rollup, by person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from liucun.warehouse.queries import person_days_sql
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class Headline:
    """Figures for the 30 app-local days ending `last_day`.

    mau: distinct people active in the window; mean_dau: active people per day, averaged over
    the 30 days; mau_to_dau: mau ÷ mean_dau (the seeds aim for 15–20×); events, visits
    (`app_open`), orders and revenue (`order_paid`) are totals over the window.
    """

    first_day: date
    last_day: date
    mau: int
    mean_dau: float
    mau_to_dau: float
    events: int
    visits: int
    orders: int
    revenue: Decimal


WINDOW_DAYS = 30


def headline(store: EventStore, app_id: str, last_day: date | None = None) -> Headline:
    """Headline figures of `app_id` for the 30 days to `last_day` (default: its latest day)."""
    d = store.dialect
    days = person_days_sql(d, d.param("app"))
    if last_day is None:
        row = store.query(f"SELECT max(day) AS d FROM ({days}) t", {"app": app_id}).to_pylist()
        last_day = row[0]["d"] or date.today()
    first_day = last_day - timedelta(days=WINDOW_DAYS - 1)
    sql = f"""
    SELECT count(DISTINCT person_id) AS mau,
           count(*) AS person_days,
           coalesce(sum(events), 0) AS events,
           coalesce(sum(visits), 0) AS visits,
           coalesce(sum(orders), 0) AS orders,
           coalesce(sum(amount), 0) AS revenue
    FROM ({days}) t
    WHERE day BETWEEN {d.param("first")} AND {d.param("last")}
    """
    r = store.query(sql, {"app": app_id, "first": first_day, "last": last_day}).to_pylist()[0]
    mean_dau = r["person_days"] / WINDOW_DAYS
    return Headline(
        first_day=first_day,
        last_day=last_day,
        mau=int(r["mau"]),
        mean_dau=mean_dau,
        mau_to_dau=r["mau"] / mean_dau if mean_dau else 0.0,
        events=int(r["events"]),
        visits=int(r["visits"]),
        orders=int(r["orders"]),
        revenue=Decimal(r["revenue"]),
    )
