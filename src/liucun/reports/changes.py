"""Where a month changed against the one before: actives by platform and by scene, segment
sizes, and the pages whose exit rates moved.

Actives of a group in a month: persons who opened the app (`app_open`) in that app-local
month with that platform (or scene) on the event; a person who used two platforms counts in
both. A group is notable when its actives moved by at least `notable_change` of the previous
month's (a group new this month is notable when it has any).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa

from liucun.analytics.activity_source import Scope
from liucun.analytics.funnel import utc_bounds
from liucun.analytics.paths import PageExits, exits
from liucun.events.standard import VISIT_EVENT
from liucun.warehouse.queries import event_person, event_person_join
from liucun.warehouse.store import EventStore

GROUP_COLUMNS = ("platform", "scene")


@dataclass(frozen=True)
class GroupChange:
    column: str
    group: str
    actives: int
    previous: int
    change: float | None  # (actives - previous) ÷ previous; None when previous is 0
    notable: bool


@dataclass(frozen=True)
class PageChange:
    page: str
    sessions: int
    exit_rate: float
    previous_exit_rate: float | None


def month_scope(app_id: str, timezone: str, month: date, last_day: date | None = None) -> Scope:
    """The app-local calendar month starting `month`, cut at `last_day` if given."""
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return Scope(app_id, timezone, month, min(end, last_day) if last_day else end)


def previous_month(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


def actives_by(store: EventStore, scope: Scope, column: str) -> dict[str, int]:
    """Persons who opened the app in the scope, per value of `column` (missing: "")."""
    if column not in GROUP_COLUMNS:
        raise ValueError(f"actives are grouped by {', '.join(GROUP_COLUMNS)}, not {column!r}")
    d = store.dialect
    first, end = utc_bounds(scope)
    sql = f"""
    SELECT coalesce(CAST(e.{column} AS VARCHAR), '') AS grp,
           count(DISTINCT {event_person()}) AS actives
    FROM events e
    {event_person_join(d, d.param("app"))}
    WHERE e.app_id = {d.param("app")} AND e.event = {d.param("visit")}
      AND e.ts >= {d.param("ts_first")} AND e.ts < {d.param("ts_end")}
    GROUP BY coalesce(CAST(e.{column} AS VARCHAR), '')
    """
    params = {"app": scope.app_id, "visit": VISIT_EVENT, "ts_first": first, "ts_end": end}
    return {r["grp"]: int(r["actives"]) for r in store.query(sql, params).to_pylist()}


def group_changes(
    store: EventStore, now: Scope, before: Scope, notable_change: float
) -> list[GroupChange]:
    """Every platform's and scene's actives this month against the previous, largest moves
    first within each column."""
    out: list[GroupChange] = []
    for column in GROUP_COLUMNS:
        this, last = actives_by(store, now, column), actives_by(store, before, column)
        out += _compared(column, this, last, notable_change)
    return out


def segment_changes(
    engine: sa.Engine, app_id: str, now: Scope, before: Scope, notable_change: float
) -> list[GroupChange]:
    """Each segment's size this month against the previous (module docstring)."""
    from liucun.engage.segments import sizes_between

    this = sizes_between(engine, app_id, now.first_day, now.last_day)
    last = sizes_between(engine, app_id, before.first_day, before.last_day)
    return _compared("segment", this, last, notable_change)


def _compared(
    column: str, this: dict[str, int], last: dict[str, int], notable_change: float
) -> list[GroupChange]:
    """Groups of `column` with this month's and last month's counts, largest moves first."""
    rows = []
    for group in sorted(set(this) | set(last)):
        a, b = this.get(group, 0), last.get(group, 0)
        change = (a - b) / b if b else None
        notable = abs(change) >= notable_change if change is not None else a > 0
        rows.append(GroupChange(column, group, a, b, change, notable))
    rows.sort(key=lambda g: (-abs(g.actives - g.previous), g.group))
    return rows


def worst_pages(
    store: EventStore, now: Scope, before: Scope, count: int, min_sessions: int
) -> list[PageChange]:
    """The `count` pages with the highest exit rates this month (among pages seen in at least
    `min_sessions` sessions), with their rates the month before."""
    last = {p.page: p for p in exits(store, before, limit=10_000)}
    seen = [p for p in exits(store, now, limit=10_000) if p.sessions >= min_sessions]
    seen.sort(key=lambda p: (-p.exit_rate, -p.sessions, p.page))
    return [_page_change(p, last.get(p.page)) for p in seen[:count]]


def _page_change(page: PageExits, before: PageExits | None) -> PageChange:
    return PageChange(
        page.page, page.sessions, page.exit_rate, before.exit_rate if before else None
    )
