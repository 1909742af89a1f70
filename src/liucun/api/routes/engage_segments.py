"""`/admin/v1/apps/{app}/segments…`, `/users/{user_id}/profile|tags`, `/tags` and
`/profiles/import`: segments, their preview, refresh, members and history; user profiles and
tags (docs/segments.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS
from liucun.engage.profiles import import_attributes
from liucun.engage.segment_errors import SegmentError
from liucun.engage.segment_rules import RuleError, rule_from_text
from liucun.engage.segments import (
    delete_segment,
    find_segment,
    list_segments,
    member_spells,
    preview,
    refresh_log,
    refresh_segment,
    refresh_state,
    rule_of,
    save_segment,
    segment_members,
    user_profile,
)
from liucun.engage.tags import USER_ID_MAX, add_tag, remove_tag, tag_counts, user_tags
from liucun.lifecycle.daily import data_day
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App

router = APIRouter(prefix="/admin/v1/apps/{app}", tags=["segments"])

SegmentName = Annotated[str, Path(min_length=1, max_length=80)]
UserPath = Annotated[str, Path(min_length=1, max_length=USER_ID_MAX, pattern=r"^\S(.*\S)?$")]
TagPath = Annotated[str, Path(pattern=r"^[\w\-.:]{1,64}$")]
# app-local days a rule may be evaluated on (a day outside has no events to read)
AsOf = Annotated[
    date | None,
    Query(alias="date", ge=date(2000, 1, 1), le=date(2999, 12, 31), description="App-local day."),
]


async def segment_error(_request: Request, exc: Exception) -> JSONResponse:
    """A refused request: `{"detail": {"code", "message", "zh", "problems"?}}`."""
    assert isinstance(exc, SegmentError)
    return JSONResponse({"detail": exc.as_json()}, status_code=exc.status)


class SegmentOut(BaseModel):
    name: str
    rule: dict[str, Any] = Field(description="The rule (docs/segments.md).")
    source: Literal["playbook", "saved"]
    description: str | None
    created_at: datetime | None
    updated_at: datetime | None
    last_refresh: dict[str, Any] | None = Field(description="as_of, refreshed_at, size.")


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] | str = Field(description="The rule, as JSON or as YAML/JSON text.")
    description: str | None = Field(None, max_length=500)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] | str = Field(description="The rule, as JSON or as YAML/JSON text.")
    as_of: date | None = Field(None, ge=date(2000, 1, 1), le=date(2999, 12, 31))
    sample: int | None = Field(None, ge=0, le=500, description="Users to show (playbook's).")


class PreviewOut(BaseModel):
    as_of: date
    users: int = Field(description="Identified users known by the day.")
    count: int = Field(description="Users the rule selects.")
    rule: dict[str, Any]
    sample: list[dict[str, Any]] = Field(description="Some of them, with their key traits.")


class RefreshOut(BaseModel):
    segment: str
    as_of: date
    refreshed_at: datetime
    size: int
    entered: int
    left: int
    seconds: float


class MembersOut(BaseModel):
    segment: str
    last_refresh: dict[str, Any] | None
    size: int
    users: list[str]


class HistoryOut(BaseModel):
    segment: str
    refreshes: list[dict[str, Any]] = Field(description="as_of, refreshed_at, size, entered, left.")
    spells: list[dict[str, Any]] = Field(description="user_id, entered_at, left_at (null: in).")


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(
        default="admin-api", min_length=1, max_length=200, description="Who, for the log."
    )
    note: str | None = Field(default=None, max_length=500)


class TagChanged(BaseModel):
    user_id: str
    tag: str
    changed: bool = Field(description="False when there was nothing to change (a retry).")


class ProfilesIn(BaseModel):
    users: list[Any] = Field(
        max_length=10_000,
        description="Rows of {user_id, attributes: {name: value}}; each is checked on its own.",
    )


class ProfilesAccepted(BaseModel):
    accepted: int
    values: int
    rejected: list[dict[str, Any]]


def _parsed(value: dict[str, Any] | str) -> Any:
    if isinstance(value, str):
        from liucun.engage.segments import invalid_rule

        try:
            return rule_from_text(value)
        except RuleError as exc:
            raise invalid_rule(exc) from None
    return rule_of(value)


def _segment_out(runtime: Any, app: App, segment: Any) -> SegmentOut:
    return SegmentOut(
        **segment.as_json(), last_refresh=refresh_state(runtime.state, app.app_id, segment.name)
    )


@router.get("/segments", response_model=list[SegmentOut], responses=ERRORS)
def get_segments(app: str, runtime: RuntimeDep, token: AdminToken) -> list[SegmentOut]:
    """Every named segment: the playbook's and the saved ones, with their last refresh."""
    found = admin_app(runtime, token, app)
    return [_segment_out(runtime, found, s) for s in list_segments(runtime.state, found.app_id)]


@router.post("/segments/preview", response_model=PreviewOut, responses=ERRORS)
def post_preview(app: str, body: PreviewIn, runtime: RuntimeDep, token: AdminToken) -> Any:
    """How many users a rule selects on a day (default: the latest with data), with a sample."""
    found = admin_app(runtime, token, app)
    rule = _parsed(body.rule)
    day = body.as_of or data_day(runtime.store, found)
    return preview(runtime.store, runtime.state, found, rule, day, body.sample)


@router.get("/segments/{name}", response_model=SegmentOut, responses=ERRORS)
def get_segment(app: str, name: SegmentName, runtime: RuntimeDep, token: AdminToken) -> Any:
    found = admin_app(runtime, token, app)
    return _segment_out(runtime, found, find_segment(runtime.state, found, name))


@router.put("/segments/{name}", response_model=SegmentOut, responses=ERRORS)
def put_segment(
    app: str, name: SegmentName, body: SegmentIn, runtime: RuntimeDep, token: AdminToken
) -> Any:
    """Save a segment (create or replace); a bad rule is answered 422 with its problems."""
    found = admin_app(runtime, token, app)
    rule = _parsed(body.rule)
    saved = save_segment(runtime.state, found.app_id, name, rule, runtime.clock(), body.description)
    return _segment_out(runtime, found, saved)


@router.delete(
    "/segments/{name}",
    status_code=204,
    responses={**ERRORS, 409: {"description": "A campaign that has not ended targets it."}},
)
def delete_saved_segment(
    app: str, name: SegmentName, runtime: RuntimeDep, token: AdminToken
) -> None:
    """Delete a saved segment; its open memberships end now, its history stays."""
    found = admin_app(runtime, token, app)
    delete_segment(runtime.state, found.app_id, name, runtime.clock())


@router.post("/segments/{name}/refresh", response_model=RefreshOut, responses=ERRORS)
def post_refresh(
    app: str, name: SegmentName, runtime: RuntimeDep, token: AdminToken, day: AsOf = None
) -> Any:
    """Evaluate the segment (or rule tag `tag:NAME`) now and record who entered and left."""
    found = admin_app(runtime, token, app)
    as_of = day or data_day(runtime.store, found)
    report = refresh_segment(runtime.store, runtime.state, found, name, as_of, runtime.clock())
    return report.as_json()


def _known(runtime: Any, app: App, name: str) -> None:
    rule_tags = playbook_in_force(runtime.state, app.app_id).playbook.engage.segments.rule_tags
    if name.startswith("tag:") and name.removeprefix("tag:") in rule_tags:
        return
    find_segment(runtime.state, app, name)


@router.get("/segments/{name}/members", response_model=MembersOut, responses=ERRORS)
def get_members(
    app: str,
    name: SegmentName,
    runtime: RuntimeDep,
    token: AdminToken,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1_000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """The segment's members as of its last refresh, by user id."""
    found = admin_app(runtime, token, app)
    _known(runtime, found, name)
    users = segment_members(runtime.state, found.app_id, name)
    return MembersOut(
        segment=name,
        last_refresh=refresh_state(runtime.state, found.app_id, name),
        size=len(users),
        users=users[offset : offset + limit],
    )


@router.get("/segments/{name}/history", response_model=HistoryOut, responses=ERRORS)
def get_history(
    app: str,
    name: SegmentName,
    runtime: RuntimeDep,
    token: AdminToken,
    user_id: Annotated[str | None, Query(max_length=USER_ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Any:
    """The refresh log, and membership spells (of one user with `user_id`), newest first."""
    found = admin_app(runtime, token, app)
    _known(runtime, found, name)
    return HistoryOut(
        segment=name,
        refreshes=refresh_log(runtime.state, found.app_id, name, limit),
        spells=member_spells(runtime.state, found.app_id, name, user_id, limit),
    )


@router.get("/users/{user_id}/profile", responses=ERRORS)
def get_profile(
    app: str, user_id: UserPath, runtime: RuntimeDep, token: AdminToken, day: AsOf = None
) -> dict[str, Any]:
    """A user's attributes, traits as of the day, tags and current segments."""
    found = admin_app(runtime, token, app)
    as_of = day or data_day(runtime.store, found)
    return user_profile(runtime.store, runtime.state, found, user_id, as_of, runtime.clock())


@router.get("/users/{user_id}/tags", responses=ERRORS)
def get_user_tags(
    app: str, user_id: UserPath, runtime: RuntimeDep, token: AdminToken
) -> list[dict[str, Any]]:
    found = admin_app(runtime, token, app)
    return user_tags(runtime.state, found.app_id, user_id)


def _rule_tags(runtime: Any, app: App) -> set[str]:
    return set(playbook_in_force(runtime.state, app.app_id).playbook.engage.segments.rule_tags)


@router.put("/users/{user_id}/tags/{tag}", response_model=TagChanged, responses=ERRORS)
def put_user_tag(
    app: str,
    user_id: UserPath,
    tag: TagPath,
    runtime: RuntimeDep,
    token: AdminToken,
    body: TagIn | None = None,
) -> TagChanged:
    """Give a user a manual tag (logged with who and when); a repeat changes nothing."""
    found = admin_app(runtime, token, app)
    who = body or TagIn()
    changed = add_tag(
        runtime.state,
        found.app_id,
        user_id,
        tag,
        who.by,
        runtime.clock(),
        _rule_tags(runtime, found),
        who.note,
    )
    return TagChanged(user_id=user_id, tag=tag, changed=changed)


@router.delete("/users/{user_id}/tags/{tag}", response_model=TagChanged, responses=ERRORS)
def delete_user_tag(
    app: str,
    user_id: UserPath,
    tag: TagPath,
    runtime: RuntimeDep,
    token: AdminToken,
    by: Annotated[str, Query(min_length=1, max_length=200)] = "admin-api",
    note: Annotated[str | None, Query(max_length=500)] = None,
) -> TagChanged:
    """Take a manual tag from a user (logged); removing one they lack changes nothing."""
    found = admin_app(runtime, token, app)
    changed = remove_tag(
        runtime.state,
        found.app_id,
        user_id,
        tag,
        by,
        runtime.clock(),
        _rule_tags(runtime, found),
        note,
    )
    return TagChanged(user_id=user_id, tag=tag, changed=changed)


@router.get("/tags", responses=ERRORS)
def get_tags(app: str, runtime: RuntimeDep, token: AdminToken) -> list[dict[str, Any]]:
    """Every tag in use, manual and rule, with its users."""
    found = admin_app(runtime, token, app)
    return tag_counts(runtime.state, found.app_id)


@router.post("/profiles/import", response_model=ProfilesAccepted, responses=ERRORS)
def post_profiles(
    app: str, body: ProfilesIn, runtime: RuntimeDep, token: AdminToken
) -> ProfilesAccepted:
    """Import users' attributes; each bad row is reported by index, the others are stored."""
    found = admin_app(runtime, token, app)
    report = import_attributes(runtime.state, found.app_id, body.users, runtime.clock())
    return ProfilesAccepted(
        accepted=report.accepted,
        values=report.values,
        rejected=[{"index": i, "reason": why} for i, why in report.rejected],
    )
