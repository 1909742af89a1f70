"""`/admin/v1/apps/{app}/alerts`: early-warning alerts — list, check now, acknowledge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from liucun.analytics.activity_source import latest_day
from liucun.analytics.metrics import app_today
from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS
from liucun.lifecycle.alert_store import (
    AlertNotFoundError,
    acknowledge,
    alert_json,
    list_alerts,
)
from liucun.lifecycle.alerts import day_problem
from liucun.lifecycle.webhook import check_and_deliver, check_json
from liucun.playbook.store import playbook_in_force

router = APIRouter(prefix="/admin/v1", tags=["alerts"])
MAX_ALERT_ID = 2**31 - 1  # alert ids are 32-bit integers in the state store

Kind = Literal[
    "weekly_revisits",
    "churn_rate",
    "first_screen_load",
    "promotion_cliff",
    "loyal_halved",
    "risk_crossed",
]
Severity = Literal["info", "warning", "critical"]


class Texts(BaseModel):
    zh: str
    en: str


class AlertOut(BaseModel):
    id: int
    kind: Kind
    scope: Literal["app", "user"]
    subject: str = Field(description="The person id for a user alert, '' for the app.")
    period: str = Field(description="What the alert covers: a month, an ISO week, a day.")
    severity: Severity
    title: Texts
    action: Texts = Field(description="What to do.")
    figures: dict[str, Any] = Field(description="The numbers that fired it, threshold included.")
    as_of: date = Field(description="The app-local day checked when it fired.")
    created_at: datetime
    acknowledged_at: datetime | None
    delivery: Literal["pending", "delivered", "failed", "off"]
    delivered_at: datetime | None
    attempts: int = Field(description="Webhook attempts so far.")


class CheckedAlert(AlertOut):
    new: bool = Field(description="Stored by this check; false: fired and stored before.")


class DeliveryOut(BaseModel):
    delivered: int
    failed: int
    pending: int


class CheckOut(BaseModel):
    as_of: date
    alerts: list[CheckedAlert]
    delivery: DeliveryOut


@router.get(
    "/apps/{app}/alerts",
    response_model=list[AlertOut],
    responses={**ERRORS, 422: {"description": "Invalid filter."}},
    summary="Alerts, newest first",
)
def get_alerts(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    status: Annotated[Literal["open", "all"], Query(description="open: not acknowledged.")] = (
        "open"
    ),
    kind: Kind | None = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    found = admin_app(runtime, token, app)
    rows = list_alerts(runtime.state, found.app_id, status, kind, severity, limit)
    return [alert_json(a) for a in rows]


@router.post(
    "/apps/{app}/alerts/check",
    response_model=CheckOut,
    responses={**ERRORS, 422: {"description": "Invalid date."}},
    summary="Check the alert rules now, store and deliver the alerts",
)
async def post_check(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    day: Annotated[
        date | None,
        Query(alias="date", description="App-local day to check; default: the latest with data."),
    ] = None,
) -> dict[str, Any]:
    """Runs every enabled rule of the app's playbook for `date`, stores the alerts (each
    once), and delivers the pending ones to the playbook's webhook. Definitions:
    docs/alerts.md."""
    found = admin_app(runtime, token, app)
    today = app_today(found)
    problem = None if day is None else day_problem(day, today)
    if problem is not None:
        raise HTTPException(422, problem)

    def check() -> dict[str, Any]:
        as_of = day or latest_day(runtime.store, found.app_id) or today
        playbook = playbook_in_force(runtime.state, found.app_id).playbook
        return check_json(check_and_deliver(runtime.store, runtime.state, found, as_of, playbook))

    # queries and webhook retries run on a worker thread; the event loop keeps serving
    return await run_in_threadpool(check)


@router.post(
    "/apps/{app}/alerts/{alert_id}/ack",
    response_model=AlertOut,
    responses=ERRORS,
    summary="Acknowledge an alert",
)
def post_ack(
    app: str,
    alert_id: Annotated[int, Path(ge=1, le=MAX_ALERT_ID)],
    runtime: RuntimeDep,
    token: AdminToken,
) -> dict[str, Any]:
    """Marks the alert seen: it leaves the open list. Acknowledging again keeps the first
    time."""
    found = admin_app(runtime, token, app)
    try:
        return alert_json(acknowledge(runtime.state, found.app_id, alert_id))
    except AlertNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
