"""`/admin/v1/apps/{app}/metrics/{kind}`: the engagement metrics, behind an admin token."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from liucun.analytics.metrics import compute
from liucun.analytics.params import (
    BREAKDOWN_PATTERN,
    FUNNEL_NAME_PATTERN,
    STEPS_PATTERN,
    WINDOW_PATTERN,
    FunnelOrder,
    MetricKind,
    MetricParams,
    parse_params,
)
from liucun.analytics.saved_funnels import list_funnels, save_funnel, with_saved_funnel
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
    params = with_saved_funnel(runtime.state, found.app_id, params)
    # queries run on DuckDB's threads; the event loop keeps serving ingest meanwhile
    return await run_in_threadpool(compute, runtime.store, found, kind, params, runtime.state)


class FunnelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: str = Field(
        max_length=2000, pattern=STEPS_PATTERN, description="Event names, comma-separated."
    )
    window: str = Field("14d", pattern=WINDOW_PATTERN, description="Conversion window: 1d.")
    order: FunnelOrder = FunnelOrder.ordered
    breakdown: str | None = Field(None, pattern=BREAKDOWN_PATTERN)


@router.get("/apps/{app}/funnels", responses=ERRORS, summary="Saved funnels")
def get_funnels(app: str, runtime: RuntimeDep, token: AdminToken) -> list[dict[str, Any]]:
    found = admin_app(runtime, token, app)
    return [asdict(f) for f in list_funnels(runtime.state, found.app_id)]


@router.put(
    "/apps/{app}/funnels/{name}",
    responses={**ERRORS, 422: {"description": "Invalid funnel."}},
    summary="Save a funnel under a name",
)
def put_funnel(
    app: str,
    name: Annotated[str, Path(pattern=FUNNEL_NAME_PATTERN)],
    body: FunnelIn,
    runtime: RuntimeDep,
    token: AdminToken,
) -> dict[str, Any]:
    """Save (or replace) a funnel, e.g. the key path browse → order → pay; read it back with
    `metrics/funnel?saved=NAME`."""
    found = admin_app(runtime, token, app)
    params = parse_params(body.model_dump())
    return asdict(save_funnel(runtime.state, found.app_id, name, params))
