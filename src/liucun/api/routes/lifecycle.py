"""`/admin/v1/apps/{app}/lifecycle/...`: lifecycle labels, their history and win-back lists."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS
from liucun.lifecycle.daily import LifecycleError, data_day, plan_labels, run_labels
from liucun.lifecycle.label_history import (
    LabelledDay,
    Transition,
    label_counts,
    labels_on,
    person_history,
)
from liucun.lifecycle.labels import LABELS
from liucun.lifecycle.winback import winback_csv, winback_list

router = APIRouter(prefix="/admin/v1", tags=["lifecycle"])

INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid dates or options; `detail` says which."}
}
MAX_DAYS = 400


class LabelCounts(BaseModel):
    day: date
    playbook_revision: int = Field(description="0: the shipped default playbook.")
    counts: dict[str, int] = Field(description="Persons per label: " + ", ".join(LABELS) + ".")


class LabelsOut(BaseModel):
    computed_days: int = Field(description="Days (re)labelled by this request.")
    days: list[LabelCounts]


class TransitionOut(BaseModel):
    person_id: str
    day: date = Field(description="The first labelled day the label held.")
    label: str
    previous: str | None
    signals: list[str] = Field(description="Depth signals that held for the person that day.")
    playbook_revision: int


class PersonHistory(BaseModel):
    person_id: str
    history: list[TransitionOut]


def _range(date_from: date | None, date_to: date | None, default: date) -> tuple[date, date]:
    last = date_to or date_from or default
    first = date_from or last
    if first > last:
        raise HTTPException(422, f"`from` {first} is after `to` {last}")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(422, f"at most {MAX_DAYS} days at a time; narrow `from`/`to`")
    return first, last


def _counts(days: list[LabelledDay]) -> list[LabelCounts]:
    return [
        LabelCounts(day=d.day, playbook_revision=d.playbook_revision, counts=d.counts) for d in days
    ]


def _transition(t: Transition) -> TransitionOut:
    return TransitionOut(**t.__dict__)


DateFrom = Annotated[date | None, Query(alias="from", description="App-local date.")]
DateTo = Annotated[date | None, Query(alias="to", description="App-local date.")]


@router.post(
    "/apps/{app}/lifecycle/label",
    response_model=LabelsOut,
    responses={**ERRORS, **INVALID},
    summary="Label users' lifecycle stage for days (the daily job)",
    description="Labels `from`..`to` (default: the latest day with data) under the playbook "
    "in force, filling any gap since the last labelled day; `relabel` recomputes days already "
    "labelled (after a playbook change). docs/lifecycle.md.",
)
async def post_label(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    relabel: bool = False,
) -> LabelsOut:
    found = admin_app(runtime, token, app)
    first, last = _range(date_from, date_to, data_day(runtime.store, found))
    try:
        plan = plan_labels(runtime.store, runtime.state, found, first, last, relabel)
    except LifecycleError as exc:
        raise HTTPException(422, str(exc)) from None
    days = await run_in_threadpool(run_labels, runtime.store, runtime.state, found, plan)
    return LabelsOut(computed_days=plan.days_to_compute, days=_counts(days))


@router.get(
    "/apps/{app}/lifecycle/counts",
    response_model=list[LabelCounts],
    responses={**ERRORS, **INVALID},
    summary="Persons per lifecycle label, per labelled day",
)
def get_counts(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> list[LabelCounts]:
    found = admin_app(runtime, token, app)
    first, last = _range(date_from, date_to, data_day(runtime.store, found))
    return _counts(label_counts(runtime.state, found.app_id, first, last))


@router.get(
    "/apps/{app}/lifecycle/users",
    response_model=list[TransitionOut],
    responses={**ERRORS, **INVALID},
    summary="Persons with a label on a day",
)
def get_users(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    label: Annotated[list[str] | None, Query(description="Labels to keep (repeatable).")] = None,
    day: Annotated[date | None, Query(alias="date", description="App-local date.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TransitionOut]:
    found = admin_app(runtime, token, app)
    wanted = tuple(label or LABELS)
    unknown = sorted(set(wanted) - set(LABELS))
    if unknown:
        raise HTTPException(422, f"unknown label(s) {unknown}; labels: {', '.join(LABELS)}")
    rows = labels_on(runtime.state, found.app_id, day or data_day(runtime.store, found), wanted)
    return [_transition(t) for t in rows[offset : offset + limit]]


@router.get(
    "/apps/{app}/lifecycle/users/{person}",
    response_model=PersonHistory,
    responses=ERRORS,
    summary="A person's lifecycle label history",
)
def get_user(app: str, person: str, runtime: RuntimeDep, token: AdminToken) -> PersonHistory:
    found = admin_app(runtime, token, app)
    history = person_history(runtime.state, found.app_id, person)
    if not history:
        raise HTTPException(404, f"person {person!r} has no lifecycle label; label the days first")
    return PersonHistory(person_id=person, history=[_transition(t) for t in history])


@router.get(
    "/apps/{app}/winback",
    responses={
        **ERRORS,
        **INVALID,
        200: {"content": {"application/json": {}, "text/csv": {}}},
    },
    summary="The win-back list: silent and churned users by value and reason",
    description="docs/lifecycle.md#win-back. `format=csv` for a spreadsheet.",
)
def get_winback(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    day: Annotated[date | None, Query(alias="date", description="App-local date.")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1_000,
    fmt: Annotated[str, Query(alias="format", pattern="^(json|csv)$")] = "json",
) -> Any:
    found = admin_app(runtime, token, app)
    try:
        entries = winback_list(runtime.store, runtime.state, found, day, limit)
    except LifecycleError as exc:
        raise HTTPException(422, str(exc)) from None
    if fmt == "csv":
        return Response(winback_csv(entries), media_type="text/csv; charset=utf-8")
    return [e.as_json() for e in entries]
