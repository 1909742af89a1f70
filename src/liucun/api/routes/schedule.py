"""`/admin/v1/apps/{app}/daily`: run an app's daily job now, and see its past runs."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS
from liucun.lifecycle.daily import data_day
from liucun.schedule.claims import claim, finish, job_runs_of
from liucun.schedule.daily import run_daily
from liucun.schedule.scheduler import DAILY_JOB

router = APIRouter(prefix="/admin/v1", tags=["schedule"])


@router.post(
    "/apps/{app}/daily",
    responses={**ERRORS, 422: {"description": "Invalid date."}},
    summary="Run the app's daily job now",
    description="Lifecycle labels, churn-risk scores (retraining when due), alerts and their "
    "delivery for `date` (default: the latest day with data); once per day across servers "
    "unless `force`. docs/lifecycle.md#the-daily-job.",
)
async def post_daily(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    day: Annotated[date | None, Query(alias="date")] = None,
    force: bool = False,
) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    newest = data_day(runtime.store, found)
    as_of = day or newest
    if as_of.year < 2000 or as_of > newest + timedelta(days=366):
        raise HTTPException(
            422, f"date {as_of} is out of range: from 2000-01-01 to a year after {newest}"
        )
    if not claim(runtime.state, found.app_id, DAILY_JOB, as_of) and not force:
        return {"app_id": found.app_id, "day": as_of.isoformat(), "ran": False}
    report = await run_in_threadpool(run_daily, runtime.store, runtime.state, found, as_of)
    finish(runtime.state, found.app_id, DAILY_JOB, as_of, report.ok, report.steps)
    return {"app_id": found.app_id, "day": as_of.isoformat(), "ran": True, "steps": report.steps}


@router.get("/apps/{app}/daily", responses=ERRORS, summary="The app's latest daily runs")
def get_daily(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    limit: Annotated[int, Query(ge=1, le=1000)] = 30,
) -> list[dict[str, Any]]:
    found = admin_app(runtime, token, app)
    return [
        {**r.__dict__, "day": r.day.isoformat()}
        for r in job_runs_of(runtime.state, found.app_id, limit)
    ]
