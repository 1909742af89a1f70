"""`/admin/v1/apps/{app}/playbook`: the app's playbook in force, new revisions, checks, history.

The playbook travels as the YAML an operator wrote (`text/yaml`, `application/yaml` or
`text/plain`), or as JSON `{"text": …, "note": …}`; a broken one is answered 422 with every
problem by line, and the revision in force stays.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from liucun.api.deps import AdminToken, RuntimeDep, read_body
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS, ErrorResponse
from liucun.lifecycle.dry_run import MAX_DAYS, MIN_DAYS, dry_run_playbook
from liucun.playbook.load import PlaybookError, Problem, decode_playbook, parse_playbook
from liucun.playbook.store import (
    NOTE_MAX_CHARS,
    playbook_changes,
    playbook_history,
    playbook_in_force,
    record_playbook,
)

router = APIRouter(prefix="/admin/v1", tags=["playbook"])

YAML_TYPES = ("text/yaml", "application/yaml", "application/x-yaml", "text/x-yaml", "text/plain")


class PlaybookIn(BaseModel):
    """The JSON form of a playbook body."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The playbook YAML, as the file holds it.")
    note: str | None = Field(None, description="Why, for the history.")


class ProblemOut(BaseModel):
    line: int | None = Field(description="1-based line of the offending YAML node, if known.")
    column: int | None
    path: str = Field(description="The setting, e.g. `churn.presets.tools.new_users`.")
    message: str


class PlaybookInvalid(BaseModel):
    detail: list[ProblemOut]


class PlaybookOut(BaseModel):
    revision: int = Field(description="0: the shipped default.")
    text: str
    playbook: dict[str, Any] = Field(description="The playbook in force, every default filled.")
    warning: str | None = Field(description="Why the newest revision is not the one in force.")
    created_at: datetime | None


class PlaybookApplied(BaseModel):
    revision: int


class ChangeOut(BaseModel):
    path: str
    old: Any
    new: Any
    kind: Literal["changed", "added", "removed"]


class PlaybookCheck(BaseModel):
    valid: bool
    changes: list[ChangeOut] = Field(description="What applying it would change.")


class RevisionOut(BaseModel):
    revision: int
    sha256: str
    created_at: datetime
    note: str | None


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            **{t: {"schema": {"type": "string"}} for t in YAML_TYPES[:3]},
            "application/json": {"schema": PlaybookIn.model_json_schema()},
        },
    }
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    415: {"model": ErrorResponse, "description": "Not YAML, plain text or JSON."},
    422: {"model": PlaybookInvalid, "description": "The playbook is broken: every problem."},
}


def _invalid(problems: list[Problem]) -> HTTPException:
    return HTTPException(422, [asdict(p) for p in problems])


async def _playbook_body(request: Request, runtime: RuntimeDep) -> tuple[str, str | None]:
    """The playbook text of the request body and the note sent with it, if any."""
    raw = await read_body(request, runtime)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = PlaybookIn.model_validate_json(raw)
        except ValidationError as exc:
            raise _invalid(
                [Problem(None, None, ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
            ) from None
        return body.text, body.note
    if kind and kind not in YAML_TYPES:
        raise HTTPException(
            415,
            f"content type {kind!r}: send the playbook as text/yaml (or application/yaml, "
            'text/plain), or JSON {"text": …, "note": …} as application/json',
        )
    try:
        return decode_playbook(raw, "body"), None
    except PlaybookError as exc:
        raise _invalid(exc.problems) from None


@router.get(
    "/apps/{app}/playbook",
    response_model=PlaybookOut,
    responses=ERRORS,
    summary="The playbook in force",
    description="Format and fields: docs/playbook.md.",
)
def get_playbook(app: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    shown = playbook_in_force(runtime.state, found.app_id)
    return {
        "revision": shown.revision,
        "text": shown.text,
        "playbook": shown.playbook.model_dump(mode="json"),
        "warning": shown.warning,
        "created_at": shown.created_at,
    }


@router.put(
    "/apps/{app}/playbook",
    response_model=PlaybookApplied,
    status_code=201,
    responses={200: {"model": PlaybookApplied, "description": "In force already."}, **_REFUSED},
    openapi_extra=_BODY,
    summary="Put a playbook in force",
)
async def put_playbook(
    app: str,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    token: AdminToken,
    note: Annotated[str | None, Query(description="Why, for the history.")] = None,
) -> dict[str, Any]:
    """Validate the playbook and store it as the app's next revision (201); the same text as
    the revision in force stores nothing (200). A broken playbook is refused (422) and the
    revision in force stays."""
    found = admin_app(runtime, token, app)
    text, body_note = await _playbook_body(request, runtime)
    note = body_note if body_note is not None else note
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise _invalid(
            [Problem(None, None, "note", f"{len(note)} characters; at most {NOTE_MAX_CHARS}")]
        )
    try:
        applied = await run_in_threadpool(record_playbook, runtime.state, found.app_id, text, note)
    except PlaybookError as exc:
        raise _invalid(exc.problems) from None
    if not applied.created:
        response.status_code = 200
    return {"revision": applied.revision}


@router.post(
    "/apps/{app}/playbook/validate",
    response_model=PlaybookCheck,
    responses=_REFUSED,
    openapi_extra=_BODY,
    summary="Check a playbook without applying it",
)
async def validate_playbook(
    app: str, request: Request, runtime: RuntimeDep, token: AdminToken
) -> dict[str, Any]:
    """200 with what applying it would change against the playbook in force, or 422 with
    every problem by line."""
    found = admin_app(runtime, token, app)
    text, _note = await _playbook_body(request, runtime)

    def check() -> dict[str, Any]:
        try:
            new = parse_playbook(text, "body")
        except PlaybookError as exc:
            raise _invalid(exc.problems) from None
        in_force = playbook_in_force(runtime.state, found.app_id)
        changes = playbook_changes(in_force.playbook, new)
        return {"valid": True, "changes": [asdict(c) for c in changes]}

    return await run_in_threadpool(check)


@router.post(
    "/apps/{app}/playbook/dry-run",
    response_model=dict[str, Any],
    responses={
        **_REFUSED,
        422: {"description": "The playbook is broken (every problem by line), or bad `days`."},
    },
    openapi_extra=_BODY,
    summary="What a playbook would change in labels and alerts, writing nothing",
)
async def dry_run(
    app: str,
    request: Request,
    runtime: RuntimeDep,
    token: AdminToken,
    days: Annotated[int, Query(ge=MIN_DAYS, le=MAX_DAYS, description="Span to check.")] = 30,
) -> dict[str, Any]:
    """The candidate against the playbook in force over the last `days` days with data:
    settings changed, the text diff, lifecycle labels on the last day and the alerts of
    the span under each (docs/playbook.md#dry-run); before the app has events, the settings
    and the diff only. 422 with every problem when broken."""
    found = admin_app(runtime, token, app)
    text, _note = await _playbook_body(request, runtime)

    def run() -> dict[str, Any]:
        try:
            candidate = parse_playbook(text, "body")
        except PlaybookError as exc:
            raise _invalid(exc.problems) from None
        return dry_run_playbook(runtime.store, runtime.state, found, text, candidate, None, days)

    # labels and alert rules read the events: off the event loop
    return await run_in_threadpool(run)


@router.get(
    "/apps/{app}/playbook/revisions",
    response_model=list[RevisionOut],
    responses=ERRORS,
    summary="The app's playbook revisions, newest first",
)
def get_revisions(app: str, runtime: RuntimeDep, token: AdminToken) -> list[dict[str, Any]]:
    found = admin_app(runtime, token, app)
    return [asdict(r) for r in playbook_history(runtime.state, found.app_id)]
