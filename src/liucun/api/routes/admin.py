"""Admin API `/admin/v1`: apps, and event counts and exports, behind an admin token."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.schemas import (
    ERRORS,
    AppCreate,
    AppCreated,
    AppOut,
    EventCount,
    RejectedRow,
    UsersAccepted,
    UsersIn,
)
from liucun.events.export import write_export
from liucun.events.users import check_users
from liucun.state.apps import App, AppError, AppExistsError, create_app, list_apps

router = APIRouter(prefix="/admin/v1", tags=["admin"])


def _server_admin(runtime: RuntimeDep, token: str) -> None:
    if not runtime.is_server_admin(token):
        raise HTTPException(403, "this needs the server's admin token (LIUCUN_ADMIN_TOKEN)")


def admin_app(runtime: RuntimeDep, token: str, app_ref: str) -> App:
    """The app `app_ref` if `token` may administer it; 404 or 403 otherwise."""
    try:
        app = runtime.app_for_admin(token, app_ref)
    except AppError as exc:
        raise HTTPException(404, str(exc)) from None
    if app is None:
        raise HTTPException(403, f"this token may not administer app {app_ref!r}")
    return app


@router.get("/apps", response_model=list[AppOut], responses=ERRORS)
def get_apps(runtime: RuntimeDep, token: AdminToken) -> list[dict[str, Any]]:
    _server_admin(runtime, token)
    return [a.__dict__ for a in list_apps(runtime.state)]


@router.post("/apps", response_model=AppCreated, status_code=201, responses=ERRORS)
def post_app(body: AppCreate, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    _server_admin(runtime, token)
    try:
        return create_app(runtime.state, body.name, body.timezone).__dict__
    except AppExistsError as exc:
        raise HTTPException(409, str(exc)) from None
    except (AppError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/apps/{app}/events/count", response_model=EventCount, responses=ERRORS)
def get_event_count(app: str, runtime: RuntimeDep, token: AdminToken) -> EventCount:
    found = admin_app(runtime, token, app)
    return EventCount(app_id=found.app_id, events=runtime.store.count(found.app_id))


@router.get(
    "/apps/{app}/events/export",
    responses={
        **ERRORS,
        200: {"content": {"application/x-ndjson": {}, "application/vnd.apache.parquet": {}}},
    },
)
def get_event_export(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    format: Literal["jsonl", "parquet"] = "jsonl",
) -> Response:
    """Every stored event of the app once, oldest first, as JSON lines or a Parquet file.

    The `X-Event-Count` header gives the number of events.
    """
    found = admin_app(runtime, token, app)
    fd, name = tempfile.mkstemp(suffix=f".{format}", prefix="liucun-export-")
    os.close(fd)
    # Written to a file first: the count goes in a header, and Parquet needs a seekable file.
    count = write_export(runtime.store.export_batches(found.app_id), name, format)
    media = "application/x-ndjson" if format == "jsonl" else "application/vnd.apache.parquet"
    return FileResponse(
        name,
        media_type=media,
        headers={"X-Event-Count": str(count)},
        background=BackgroundTask(os.unlink, name),
    )


@router.post("/apps/{app}/users", response_model=UsersAccepted, responses=ERRORS)
def post_users(app: str, body: UsersIn, runtime: RuntimeDep, token: AdminToken) -> UsersAccepted:
    """Record users' creation times (lifecycle's "new"); the earliest time of a user wins.

    Rows that are not valid are reported by index and the others stored.
    """
    found = admin_app(runtime, token, app)
    table, rejected = check_users(body.users)
    runtime.store.add_users(found.app_id, table)
    return UsersAccepted(
        accepted=table.num_rows,
        rejected=[RejectedRow(index=i, reason=why) for i, why in rejected],
    )
