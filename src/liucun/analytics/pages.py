"""Per-page behaviour: dwell time, and taps binned on a grid (the heatmap)."""

from __future__ import annotations

from dataclasses import dataclass

from liucun.analytics.activity_source import Scope
from liucun.analytics.funnel import utc_bounds
from liucun.warehouse.store import EventStore

DWELL_EVENT = "page_leave"
TAP_EVENT = "tap"


@dataclass(frozen=True)
class PageDwell:
    """Dwell time on a page from `page_leave` events' `duration_ms`: how many were timed, and
    the mean, median and 90th percentile in seconds."""

    page: str
    leaves: int
    mean_seconds: float
    median_seconds: float
    p90_seconds: float


@dataclass(frozen=True)
class Heatmap:
    """Taps on `page` in a `columns` × `rows` grid over the screen.

    Each tap's x and y are divided by its screen's width and height
    (`properties.screen_width`/`screen_height`), so phones of every size share one grid;
    cells[row][column] counts taps. `skipped` taps had no screen size or fell outside it.
    """

    page: str
    columns: int
    rows: int
    taps: int
    skipped: int
    cells: list[list[int]]


def _range(scope: Scope, **more: object) -> dict[str, object]:
    ts_first, ts_end = utc_bounds(scope)
    return scope.sql_params(ts_first=ts_first, ts_end=ts_end, **more)


def dwell(store: EventStore, scope: Scope, limit: int = 100) -> list[PageDwell]:
    """Dwell per page, the `limit` pages with the most timed leaves first."""
    d = store.dialect
    sql = f"""
    SELECT page, count(*) AS leaves, {d.exact_sum("duration_ms")} AS total_ms,
           {d.median("duration_ms")} AS median_ms, {d.quantile("duration_ms", 0.9)} AS p90_ms
    FROM events
    WHERE app_id = {d.param("app")} AND event = {d.param("dwell_event")}
      AND page IS NOT NULL AND duration_ms IS NOT NULL AND duration_ms >= 0
      AND ts >= {d.param("ts_first")} AND ts < {d.param("ts_end")}
    GROUP BY page ORDER BY leaves DESC, page LIMIT {int(limit)}
    """
    rows = store.query(sql, _range(scope, dwell_event=DWELL_EVENT)).to_pylist()
    return [
        PageDwell(
            r["page"],
            int(r["leaves"]),
            int(r["total_ms"]) / (int(r["leaves"]) * 1000),  # exact ms, one division
            # quantiles of whole ms, exact, then one division
            float(r["median_ms"]) / 1000,
            float(r["p90_ms"]) / 1000,
        )
        for r in rows
    ]


def heatmap(store: EventStore, scope: Scope, page: str, columns: int, rows: int) -> Heatmap:
    """Taps on `page` counted per grid cell (see `Heatmap`)."""
    d = store.dialect
    width = d.try_double(d.json_text("properties", "screen_width"))
    height = d.try_double(d.json_text("properties", "screen_height"))
    # at least a pixel: a smaller "screen" would blow a tap up past any integer
    usable = "w >= 1 AND h >= 1 AND x IS NOT NULL AND y IS NOT NULL"
    # x · columns ÷ w, not x ÷ w · columns: a tap on a grid line must not fall a cell short
    # to rounding; a tap exactly on the right (bottom) edge belongs to the last cell
    # off the screen is decided on the pixels: a tap a hair left of the edge (-5e-324 px)
    # would scale to -0.0 and pass for cell 0
    col = (
        f"CASE WHEN x < 0 OR x > w THEN NULL WHEN x = w THEN {int(columns) - 1} "
        f"ELSE floor(x * {int(columns)} / w) END"
    )
    row = (
        f"CASE WHEN y < 0 OR y > h THEN NULL WHEN y = h THEN {int(rows) - 1} "
        f"ELSE floor(y * {int(rows)} / h) END"
    )
    sql = f"""
    SELECT CASE WHEN {usable} THEN CAST({col} AS BIGINT) END AS col,
           CASE WHEN {usable} THEN CAST({row} AS BIGINT) END AS row,
           count(*) AS taps
    FROM (
        SELECT x, y, {width} AS w, {height} AS h FROM events
        WHERE app_id = {d.param("app")} AND event = {d.param("tap_event")}
          AND page = {d.param("page")}
          AND ts >= {d.param("ts_first")} AND ts < {d.param("ts_end")}
    ) t
    GROUP BY 1, 2
    """
    params = _range(scope, tap_event=TAP_EVENT, page=page)
    cells = [[0] * columns for _ in range(rows)]
    taps = skipped = 0
    for r in store.query(sql, params).to_pylist():
        col, row, n = r["col"], r["row"], int(r["taps"])
        taps += n
        if col is None or row is None or not (0 <= col < columns and 0 <= row < rows):
            skipped += n
            continue
        cells[row][col] += n
    return Heatmap(page, columns, rows, taps, skipped, cells)
