"""`POST /v1/batch`: liucun's native event ingest, authorised by the app's write key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from liucun.api.deps import RuntimeDep, bearer, read_body
from liucun.api.schemas import ERRORS, IngestResponse, NativeBatch
from liucun.events.ingest import IngestResult, parse_native, store_checked
from liucun.loyalty.from_events import queue_reactions
from liucun.state.apps import App

router = APIRouter(tags=["ingest"])


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with its `#/$defs/...` references replaced by the definitions they name."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inlined(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inlined(v, defs) for v in node]
    return node


def _body_schema() -> dict[str, Any]:
    # Inlined: a `$ref` to `#/components/schemas/EventIn` would dangle, as no route declares
    # EventIn itself, and a `#/$defs/...` one would resolve against the whole document.
    schema = NativeBatch.model_json_schema()
    defs = schema.pop("$defs", {})
    return dict(_inlined(schema, defs))


_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _body_schema()}},
    }
}


def response_of(result: IngestResult) -> dict[str, Any]:
    return {
        "received": result.received,
        "accepted": result.accepted,
        "new": result.new,
        "duplicates": result.duplicates,
        "rejected": [{"index": r.index, "reason": r.reason} for r in result.rejected],
    }


def app_for_key(runtime: RuntimeDep, key: str | None) -> App:
    if not key:
        raise HTTPException(
            401, "missing write key: send `Authorization: Bearer <write_key>` or `api_key`"
        )
    app = runtime.app_for_write_key(key)
    if app is None:
        raise HTTPException(401, "unknown write key: check the key `liucun apps create` printed")
    return app


def is_backend(runtime: RuntimeDep, app: App, admin_token: str | None) -> bool:
    """Whether the batch comes from the app's backend: it also sends the app's admin token
    (`X-Admin-Token`), which the mini-program never holds. Its events are trusted."""
    if admin_token is None:
        return False
    if runtime.app_for_backend(admin_token) != app:
        raise HTTPException(
            401, "X-Admin-Token is not this app's admin token: send the one `apps create` printed"
        )
    return True


async def react(runtime: RuntimeDep, app: App, result: IngestResult, trusted: bool) -> None:
    """Queue the stored events that loyalty rules react to; a failure asks the client to
    retry (the retry stores nothing twice and queues the reactions again, which award nothing
    twice)."""
    if result.events is None or result.accepted == 0:
        return
    try:
        queued = await run_in_threadpool(
            queue_reactions,
            runtime.state,
            runtime.programme(app),
            result.events,
            trusted,
            runtime.clock(),
        )
    except Exception as exc:
        raise HTTPException(
            503,
            f"the events are stored but their loyalty reactions could not be queued "
            f"({type(exc).__name__}); send the same batch again: nothing is stored or awarded "
            "twice",
        ) from exc
    if queued and runtime.reactions is not None:
        runtime.reactions.wake()


@router.post(
    "/v1/batch",
    response_model=IngestResponse,
    responses=ERRORS,
    openapi_extra=_BODY,
    summary="Send a batch of events",
)
async def post_batch(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    x_write_key: Annotated[str | None, Header()] = None,
    x_admin_token: Annotated[
        str | None,
        Header(
            description="Your backend's batches: the app's admin token, which marks the "
            "events as trusted (orders and refunds earn and reverse points only then)."
        ),
    ] = None,
) -> dict[str, Any]:
    """Store the valid events of a batch once each; report the invalid ones by index.

    Answers after the events are committed and those that loyalty rules react to are queued
    for them (the rules run within a second or so). 200 when at
    least one event was accepted (or the batch was empty), 400 when every event was rejected.
    """
    header_key = bearer(authorization) or x_write_key
    # a wrong key in a header is refused before any work is spent on the body
    app = app_for_key(runtime, header_key) if header_key else None
    trusted = app is not None and is_backend(runtime, app, x_admin_token)
    body = await read_body(request, runtime)
    parsed = await runtime.parse(parse_native, body, runtime.limits, datetime.now(UTC))
    if app is None:
        app = app_for_key(runtime, parsed.body_key)
        trusted = is_backend(runtime, app, x_admin_token)
    result = await store_checked(parsed.checked, app, runtime.writer)
    if parsed.checked.received and result.accepted == 0:
        raise HTTPException(400, {"message": "every event was rejected", **response_of(result)})
    await react(runtime, app, result, trusted)
    return response_of(result)
