"""PostHog-compatible capture endpoints, so PostHog's SDKs can send to liucun unchanged."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request

from liucun.api.deps import RuntimeDep, read_body
from liucun.api.routes.ingest import _sent_at, app_for_key, response_of
from liucun.api.schemas import ERRORS, PostHogResponse
from liucun.events import posthog
from liucun.events.ingest import PayloadError, check_batch_size, decompress, ingest, parse_json

router = APIRouter(tags=["posthog"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}}
        },
    }
}


def _payload(body: bytes, content_type: str, limit: int) -> Any:
    """The JSON payload of a capture request: plain, gzip, or posthog-js's base64 form field."""
    if "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(body.decode("latin-1"))
        if "data" not in form:
            raise PayloadError("form body has no `data` field")
        try:
            body = base64.b64decode(form["data"][0], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise PayloadError(f"`data` is not base64: {exc}") from None
        body = decompress(body, limit)
    return parse_json(body)


async def capture(request: Request, runtime: RuntimeDep, api_key: str | None) -> dict[str, Any]:
    limit = runtime.settings.max_body_bytes
    payload = _payload(
        await read_body(request, runtime), request.headers.get("content-type", ""), limit
    )
    if not isinstance(payload, dict | list):
        raise PayloadError('body must be a PostHog event, a list of events or {"batch": [...]}')
    app = app_for_key(runtime, posthog.api_key_of(payload) or api_key)
    raw, sent_at = posthog.events_of(payload)
    check_batch_size(raw, runtime.settings.max_batch_events)
    now = datetime.now(UTC)
    native = [posthog.to_native(e, now) for e in raw]
    result = await ingest(native, app, runtime.writer, _sent_at(sent_at), now)
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
