"""PostHog-compatible capture endpoints, so PostHog's SDKs can send to liucun unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from liucun.api.deps import RuntimeDep, read_body
from liucun.api.routes.ingest import app_for_key, react, response_of
from liucun.api.schemas import ERRORS, PostHogResponse
from liucun.events.ingest import parse_posthog, store_checked

router = APIRouter(tags=["posthog"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}}
        },
    }
}


async def capture(request: Request, runtime: RuntimeDep, api_key: str | None) -> dict[str, Any]:
    body = await read_body(request, runtime)
    content_type = request.headers.get("content-type", "")
    parsed = await runtime.parse(
        parse_posthog, body, content_type, runtime.limits, datetime.now(UTC)
    )
    app = app_for_key(runtime, parsed.body_key or api_key)
    result = await store_checked(parsed.checked, app, runtime.writer)
    # the SDK runs in the client: its events are never trusted (no points for orders)
    await react(runtime, app, result, trusted=False)
    return {"status": 1, **response_of(result)}


ApiKeyQuery = Annotated[str | None, Query(description="The write key, if not in the body.")]


for path in ("/capture/", "/batch/", "/e/", "/i/v0/e/"):

    @router.post(
        path,
        response_model=PostHogResponse,
        responses=ERRORS,
        openapi_extra=_BODY,
        summary=f"PostHog capture ({path})",
        name=f"posthog_capture_{path.strip('/').replace('/', '_')}",
    )
    async def post_capture(
        request: Request, runtime: RuntimeDep, api_key: ApiKeyQuery = None
    ) -> dict[str, Any]:
        """A PostHog capture request; bad events are reported by index, the others stored."""
        return await capture(request, runtime, api_key)
