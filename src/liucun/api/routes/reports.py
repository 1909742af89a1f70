"""`/admin/v1/apps/{app}/reports/monthly`: the monthly evaluation as JSON or HTML."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS
from liucun.reports.model import ReportError
from liucun.reports.monthly import monthly_report, parse_month
from liucun.reports.render import render_html

router = APIRouter(prefix="/admin/v1", tags=["reports"])

MONTH = Query(
    pattern=r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])$",
    description="The app-local calendar month, YYYY-MM.",
)


@router.get(
    "/apps/{app}/reports/monthly",
    responses={**ERRORS, 200: {"content": {"text/html": {}}}},
    summary="The monthly evaluation report",
    description="KPIs against targets and the previous month, changes by platform and scene, "
    "the worst exit pages, campaigns' lift, the month's alerts and recommended playbook "
    "adjustments (docs/report.md). `format=html` gives the printable page.",
)
async def get_monthly_report(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    month: Annotated[str, MONTH],
    format: Literal["json", "html"] = "json",
    lang: Literal["zh", "en"] = "zh",
) -> Any:
    found = admin_app(runtime, token, app)
    try:
        first = parse_month(month)
        report = await run_in_threadpool(monthly_report, runtime.store, runtime.state, found, first)
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from None
    if format == "html":
        return HTMLResponse(render_html(report, lang))
    return report.as_json()
