"""`/admin/v1/apps/{app}/metrics/{kind}`: the engagement metrics, behind an admin token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from liucun.analytics.metrics import compute
from liucun.analytics.params import MetricKind, MetricParams
from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS

router = APIRouter(prefix="/admin/v1", tags=["metrics"])


@router.get(
    "/apps/{app}/metrics/{kind}",
    responses={**ERRORS, 422: {"description": "Invalid options or an unknown metric."}},
    summary="An engagement metric",
    description="Definitions and options: docs/metrics.md.",
)
async def get_metric(
    app: str,
    kind: MetricKind,
    runtime: RuntimeDep,
    token: AdminToken,
    params: Annotated[MetricParams, Query()],
) -> Any:
    found = admin_app(runtime, token, app)
    # queries run on DuckDB's threads; the event loop keeps serving ingest meanwhile
    return await run_in_threadpool(compute, runtime.store, found, kind, params)
