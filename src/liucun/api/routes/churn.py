"""`/admin/v1/apps/{app}/churn/...`: churn-risk scores and models, behind an admin token."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from liucun.api.deps import AdminToken, RuntimeDep
from liucun.api.routes.admin import admin_app
from liucun.api.schemas import ERRORS
from liucun.lifecycle.risk import RiskError, train, trained_json
from liucun.lifecycle.risk_distribution import MAX_BINS, risk_distribution
from liucun.lifecycle.risk_scores import (
    person_risk,
    person_risk_json,
    score,
    scored_json,
    top_risks,
)
from liucun.playbook.store import playbook_in_force

router = APIRouter(prefix="/admin/v1", tags=["churn"])

INVALID: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Too little history, no model yet, or a day outside the data; "
        "`detail` says what to do."
    }
}


class FiguresOut(BaseModel):
    persons: int
    churned: int
    churn_rate: float
    mean_risk: float
    roc_auc: float | None = Field(description="Null when only one outcome occurred.")
    pr_auc: float | None = Field(description="Average precision; null with one outcome.")
    brier: float = Field(description="Mean squared error of the risk; lower is better.")


class GainsOut(BaseModel):
    roc_auc: float | None = Field(description="Model minus baseline.")
    pr_auc: float | None = Field(description="Model minus baseline.")
    brier: float = Field(description="Baseline minus model (positive: the model is better).")


class HeldOutOut(BaseModel):
    model: FiguresOut
    baseline: FiguresOut = Field(description="Recency-only logistic regression, calibrated.")
    gains: GainsOut


class TrainedOut(BaseModel):
    model_id: str
    app_id: str
    as_of: date = Field(description="Labels observed up to this day (T).")
    features_as_of: date = Field(description="Features as of T − horizon.")
    horizon_days: int
    training_persons: int
    held_out: HeldOutOut


class ScoredOut(BaseModel):
    app_id: str
    as_of: date
    model_id: str
    persons: int
    high_risk: int = Field(description="Persons at or above the playbook's risk.high_risk.")
    mean_risk: float


class ReasonOut(BaseModel):
    feature: str
    zh: str
    en: str
    value: float | None
    reference: float = Field(description="The healthy value (median of persons who stayed).")
    contribution: float = Field(description="Risk minus risk with the feature at reference.")


class PersonRiskOut(BaseModel):
    person_id: str
    as_of: date
    risk: float = Field(description="Probability of no activity in the horizon after as_of.")
    previous_risk: float | None = Field(description="The score this one replaced.")
    high_risk: bool
    reasons: list[ReasonOut]
    model_id: str
    scored_at: datetime


class ScoresOut(BaseModel):
    app_id: str
    scores: list[PersonRiskOut]


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description="T; default: the latest day with data.")
    horizon_days: int | None = Field(
        None, ge=7, le=180, description="Default: the playbook's risk.horizon_days."
    )


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description="Default: the latest day with data.")


@router.get(
    "/apps/{app}/churn/scores",
    response_model=ScoresOut,
    responses=ERRORS,
    summary="Persons at the highest churn risk, with reasons",
    description="The stored scores (`POST …/churn/score` or `liucun churn score`), highest "
    "risk first. docs/churn-risk.md.",
)
def get_scores(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    risk = playbook_in_force(runtime.state, found.app_id).playbook.risk
    rows = top_risks(runtime.state, found.app_id, risk, limit)
    return {"app_id": found.app_id, "scores": [person_risk_json(p) for p in rows]}


class RiskBin(BaseModel):
    low: float
    high: float
    persons: int


class DistributionOut(BaseModel):
    persons: int = Field(description="Persons with a stored score.")
    high_risk: int = Field(description="Persons at or above the playbook's risk.high_risk.")
    high_risk_threshold: float
    as_of: date | None = Field(description="The newest score's day; null: no scores yet.")
    bins: list[RiskBin] = Field(description="Equal bands of [0, 1]: low ≤ risk < high.")


@router.get(
    "/apps/{app}/churn/distribution",
    response_model=DistributionOut,
    responses=ERRORS,
    summary="Persons per band of churn risk (the stored scores)",
    description="docs/churn-risk.md#distribution.",
)
def get_distribution(
    app: str,
    runtime: RuntimeDep,
    token: AdminToken,
    bins: Annotated[int, Query(ge=1, le=MAX_BINS)] = 10,
) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    risk = playbook_in_force(runtime.state, found.app_id).playbook.risk
    return risk_distribution(runtime.state, found.app_id, bins, risk.high_risk)


@router.get(
    "/apps/{app}/churn/users/{person}",
    response_model=PersonRiskOut,
    responses=ERRORS,
    summary="One person's churn risk and reasons",
)
def get_user(app: str, person: str, runtime: RuntimeDep, token: AdminToken) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    risk = playbook_in_force(runtime.state, found.app_id).playbook.risk
    stored = person_risk(runtime.state, found.app_id, person, risk)
    if stored is None:
        raise HTTPException(404, f"person {person!r} has no churn score in app {found.name}")
    return person_risk_json(stored)


@router.post(
    "/apps/{app}/churn/train",
    response_model=TrainedOut,
    responses={**ERRORS, **INVALID},
    summary="Train the churn-risk model (takes seconds to minutes)",
    description="Features at T − horizon, labels from the horizon after it; held-out figures "
    "against the recency baseline. docs/churn-risk.md.",
)
async def post_train(
    app: str, runtime: RuntimeDep, token: AdminToken, body: TrainIn | None = None
) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    body = body or TrainIn(as_of=None, horizon_days=None)
    risk = playbook_in_force(runtime.state, found.app_id).playbook.risk
    try:
        # minutes of queries and fitting: off the event loop, which keeps serving ingest
        trained = await run_in_threadpool(
            train, runtime.store, runtime.state, found, risk, body.as_of, body.horizon_days
        )
    except RiskError as exc:
        raise HTTPException(422, str(exc)) from None
    return trained_json(trained)


@router.post(
    "/apps/{app}/churn/score",
    response_model=ScoredOut,
    responses={**ERRORS, **INVALID},
    summary="Score every person in scope with the latest model",
)
async def post_score(
    app: str, runtime: RuntimeDep, token: AdminToken, body: ScoreIn | None = None
) -> dict[str, Any]:
    found = admin_app(runtime, token, app)
    body = body or ScoreIn(as_of=None)
    risk = playbook_in_force(runtime.state, found.app_id).playbook.risk
    try:
        scored = await run_in_threadpool(
            score, runtime.store, runtime.state, found, risk, body.as_of
        )
    except RiskError as exc:
        raise HTTPException(422, str(exc)) from None
    return scored_json(scored)
