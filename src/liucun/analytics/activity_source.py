"""Who was active on which app-local day: the relation every engagement metric starts from.

Activity means doing the chosen event: `visit` (an `app_open`, the default), `any` event, or a
named event. A person is a user id with every anonymous id linked to it (identify/alias), so
a visitor who logs in later is counted once. Events the daily rollup counts (visits, any
event, page views, paid orders) are read from it; other events from the events table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from liucun.analytics.params import (
    ANY,
    DEFAULT_RANGE_DAYS,
    MAX_RANGE_DAYS,
    VISIT,
    AnalyticsError,
    MetricParams,
    parse_step,
)
from liucun.events.standard import (
    ORDER_PAID_EVENT,
    PAGE_VIEW_EVENT,
    STANDARD_EVENTS,
    VISIT_EVENT,
)
from liucun.state.apps import App
from liucun.warehouse.queries import event_person, event_person_join, person_days_sql
from liucun.warehouse.store import EventStore

# Rollup columns that count an activity event per person and day.
ROLLUP_COUNTS = {VISIT: "visits", ANY: "events", PAGE_VIEW_EVENT: "page_views"}
ROLLUP_COUNTS[ORDER_PAID_EVENT] = "orders"


@dataclass(frozen=True)
class Scope:
    """One app and an inclusive range of its local dates, as a metric reads them."""

    app_id: str
    timezone: str
    first_day: date
    last_day: date
    week_starts_sunday: bool = False

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def sql_params(self, **more: Any) -> dict[str, Any]:
        return {"app": self.app_id, "first": self.first_day, "last": self.last_day, **more}


def active_days_sql(store: EventStore, timezone: str, event: str, param: str) -> str:
    """SQL for (person_id, day, n): persons doing `event` on an app-local day, `n` times.

    The event name is read from query parameter `param` when it is not a rollup count; the
    app id from `app`. Covers all history: metrics cut their own ranges.
    """
    d = store.dialect
    column = ROLLUP_COUNTS.get(event)
    if column is not None:
        return f"""
        SELECT person_id, day, {column} AS n
        FROM ({person_days_sql(d, d.param("app"))}) pd WHERE {column} > 0
        """
    day = d.local_date("e.ts", d.quote(timezone))
    return f"""
    SELECT {event_person()} AS person_id, {day} AS day, count(*) AS n
    FROM events e
    {event_person_join(d, d.param("app"))}
    WHERE e.app_id = {d.param("app")} AND e.event = {d.param(param)}
    GROUP BY {event_person()}, {day}
    """


def first_value_days_sql(
    store: EventStore, timezone: str, event: str, param: str, value: str
) -> str:
    """SQL for (person_id, day, first_value): persons doing `event` on an app-local day, with
    SQL expression `value` (over event alias `e`) read from their first such event that day
    (earliest time, then smallest event id; a null there is the answer).

    Reads the events table, as the rollup keeps no event columns; parameters as in
    `active_days_sql`.
    """
    d = store.dialect
    day = d.local_date("e.ts", d.quote(timezone))
    if event == VISIT:
        only = f"AND e.event = {d.quote(VISIT_EVENT)}"
    elif event == ANY:
        only = ""
    else:
        only = f"AND e.event = {d.param(param)}"
    first = d.first_by_with_nulls(value, f"(e.ts, {d.uuid_order('e.event_id')})")
    return f"""
    SELECT {event_person()} AS person_id, {day} AS day, {first} AS first_value
    FROM events e
    {event_person_join(d, d.param("app"))}
    WHERE e.app_id = {d.param("app")} {only}
    GROUP BY {event_person()}, {day}
    """


def check_event(store: EventStore, app_id: str, event: str) -> None:
    """Refuse an activity event that is neither a standard event nor one the app has sent."""
    if event in ROLLUP_COUNTS or event in STANDARD_EVENTS:
        return
    d = store.dialect
    # the first matching row is enough: the scan stops there instead of counting them all
    sql = (
        "SELECT 1 AS found FROM events "
        f"WHERE app_id = {d.param('app')} AND event = {d.param('event')} LIMIT 1"
    )
    if store.query(sql, {"app": app_id, "event": event}).num_rows == 0:
        raise AnalyticsError(
            f"unknown event {event!r}: app has never sent it; use `visit`, `any`, a standard "
            "event or an event name the app sends"
        )


def latest_day(store: EventStore, app_id: str) -> date | None:
    """The app's latest local day with any event, from the rollup."""
    d = store.dialect
    sql = f"SELECT max(day) AS day FROM user_days WHERE app_id = {d.param('app')}"
    value = store.query(sql, {"app": app_id}).column("day")[0].as_py()
    return value if isinstance(value, date) else None


def first_day(store: EventStore, app_id: str) -> date | None:
    """The app's earliest local day with any event, from the rollup."""
    d = store.dialect
    sql = f"SELECT min(day) AS day FROM user_days WHERE app_id = {d.param('app')}"
    value = store.query(sql, {"app": app_id}).column("day")[0].as_py()
    return value if isinstance(value, date) else None


def resolve_scope(store: EventStore, app: App, params: MetricParams, today: date) -> Scope:
    """The app and date range a metric covers: `to` defaults to the latest day with data
    (else `today`), `from` to 30 days before `to`."""
    named = {params.event, params.start_event, params.return_event} - {None}
    if params.steps is not None:
        named |= {parse_step(step).event for step in params.step_list}
    for event in sorted(e for e in named if e is not None):
        check_event(store, app.app_id, event)
    last = params.date_to or latest_day(store, app.app_id) or today
    first = params.date_from or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if first > last:
        raise AnalyticsError(f"`from` {first} is after `to` {last} (the latest day with data)")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise AnalyticsError(
            f"the date range is longer than {MAX_RANGE_DAYS} days; narrow `from`/`to`"
        )
    return Scope(app.app_id, app.timezone, first, last, params.week_start == "sunday")
