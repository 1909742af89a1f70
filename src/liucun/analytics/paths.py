"""Exit pages and paths: where sessions end, and which page leads to which (Sankey data)."""

from __future__ import annotations

from dataclasses import dataclass

from liucun.analytics.activity_source import Scope
from liucun.analytics.funnel import utc_bounds
from liucun.events.standard import PAGE_VIEW_EVENT
from liucun.warehouse.store import EventStore

# A session without a client session id ends after this much inactivity (PostHog's rule).
SESSION_GAP_SECONDS = 30 * 60
ENTRY, EXIT = "$entry", "$exit"


@dataclass(frozen=True)
class PageExits:
    """sessions: sessions that viewed the page; exits: sessions whose last page view was
    this page; exit_rate: exits ÷ sessions; views: its page views."""

    page: str
    views: int
    sessions: int
    exits: int
    exit_rate: float


@dataclass(frozen=True)
class PathLink:
    """Sessions that went from page `source` straight to page `target` (a session counts once
    per link). `$entry` is a session's start, `$exit` its end."""

    source: str
    target: str
    sessions: int


def _views_sql(store: EventStore) -> str:
    """Page views in the range with their session and their place in it.

    A session is the client's `session_id`; views without one are cut into sessions of one
    distinct id at every gap of more than 30 minutes between them (views that carry a
    session id do not bridge a gap). Repeated views of one page in a row (a refresh,
    a return from a dialog) are one step of the path.
    """
    d = store.dialect
    us = d.epoch_us("ts")
    gap = SESSION_GAP_SECONDS * 1_000_000
    return f"""
    raw AS (
        SELECT distinct_id, session_id, page, {us} AS us,
               {us} - lag({d.nullable(us)}) OVER (
                   PARTITION BY distinct_id, session_id IS NULL ORDER BY ts
               ) AS since
        FROM events
        WHERE app_id = {d.param("app")} AND event = {d.param("page_view")}
          AND page IS NOT NULL
          AND ts >= {d.param("ts_first")} AND ts < {d.param("ts_end")}
    ),
    cut AS (
        SELECT *, sum(CASE WHEN since IS NULL OR since > {gap} THEN 1 ELSE 0 END)
                      OVER (PARTITION BY distinct_id, session_id IS NULL ORDER BY us
                            ROWS UNBOUNDED PRECEDING) AS n
        FROM raw
    ),
    views AS (
        SELECT CASE WHEN session_id IS NOT NULL THEN 's' || session_id
                    ELSE 'd' || distinct_id || '#' || CAST(n AS VARCHAR) END AS session,
               page, us
        FROM cut
    ),
    steps AS (
        SELECT session, page, us,
               lag({d.nullable("page")}) OVER (PARTITION BY session ORDER BY us) AS previous,
               lead({d.nullable("page")}) OVER (PARTITION BY session ORDER BY us) AS following
        FROM views
    )"""


def _params(scope: Scope) -> dict[str, object]:
    ts_first, ts_end = utc_bounds(scope)
    return scope.sql_params(ts_first=ts_first, ts_end=ts_end, page_view=PAGE_VIEW_EVENT)


def exits(store: EventStore, scope: Scope, limit: int = 100) -> list[PageExits]:
    """For each page (the `limit` most visited), how often sessions ended on it."""
    sql = f"""
    WITH {_views_sql(store)}
    SELECT page, count(*) AS views, count(DISTINCT session) AS sessions,
           count(DISTINCT CASE WHEN following IS NULL THEN session END) AS exits
    FROM steps GROUP BY page ORDER BY sessions DESC, page LIMIT {int(limit)}
    """
    return [
        PageExits(
            r["page"],
            int(r["views"]),
            int(r["sessions"]),
            int(r["exits"]),
            int(r["exits"]) / int(r["sessions"]),
        )
        for r in store.query(sql, _params(scope)).to_pylist()
    ]


def paths(
    store: EventStore, scope: Scope, page: str | None = None, limit: int = 100
) -> list[PathLink]:
    """The `limit` most travelled links between pages, with session entries and exits; with
    `page`, only the links into and out of it (its top previous and next pages)."""
    d = store.dialect
    focus = f"WHERE source = {d.param('page')} OR target = {d.param('page')}" if page else ""
    sql = f"""
    WITH {_views_sql(store)},
    moves AS (
        SELECT session, coalesce(previous, '{ENTRY}') AS source, page AS target FROM steps
        WHERE previous IS NULL OR previous <> page
        UNION ALL
        SELECT session, page AS source, '{EXIT}' AS target FROM steps WHERE following IS NULL
    )
    SELECT source, target, count(DISTINCT session) AS sessions FROM moves {focus}
    GROUP BY source, target ORDER BY sessions DESC, source, target LIMIT {int(limit)}
    """
    rows = store.query(sql, {**_params(scope), "page": page}).to_pylist()
    return [PathLink(r["source"], r["target"], int(r["sessions"])) for r in rows]
