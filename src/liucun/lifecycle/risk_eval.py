"""The churn-risk model against the simulator's ground truth and the recency-only baseline.

Protocol, for an as-of day T and horizon h over a simulated population stored in an event
store (nothing after T is read to fit):

1. Fit the model and the baseline as `risk.train` does: features at T0 = T − h, observed
   labels from (T0, T], persons outside the held-out hash split only.
2. Score the held-out persons (same hash split, so none was trained on) at T.
3. Compare with the truth: a person *truly churned* when the simulator's `churn_day` (the first
   day the user is gone for good) is on or before T + h; persons in scope are those active in
   the 90 days up to T. The observed label (no event in T+1 … T+h) is what training can see;
   the truth removes its noise in both directions: an alive user who happens not to visit for
   h days is not truly churned, and a user who visits once more in the horizon and then leaves
   is. Users already gone at T (churn_day ≤ T) are truly churned too: scoring them high is right.
4. When the store reaches T + h, also compare with the observed label after T.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from liucun.analytics.activity_source import latest_day
from liucun.lifecycle.features import FEATURE_NAMES, person_features
from liucun.lifecycle.risk import (
    RECENCY,
    Figures,
    Progress,
    RiskModel,
    feature_matrix,
    figures,
    fit_pair,
    held_out,
    observed_labels,
    training_day,
)
from liucun.state.apps import App
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class Comparison:
    """The model and the baseline on the same persons and outcomes; gains are positive when the
    model is better (AUCs higher, Brier lower)."""

    model: Figures
    baseline: Figures

    @property
    def roc_auc_gain(self) -> float:
        assert self.model.roc_auc is not None and self.baseline.roc_auc is not None
        return self.model.roc_auc - self.baseline.roc_auc

    @property
    def pr_auc_gain(self) -> float:
        assert self.model.pr_auc is not None and self.baseline.pr_auc is not None
        return self.model.pr_auc - self.baseline.pr_auc

    @property
    def brier_gain(self) -> float:
        return self.baseline.brier - self.model.brier


@dataclass(frozen=True)
class Evaluation:
    """Held-out figures at `as_of` against the truth (and the observed label when known)."""

    as_of: date
    features_as_of: date
    horizon_days: int
    training_persons: int
    held_out_persons: int
    truth: Comparison
    observed: Comparison | None
    # per held-out person, for further analysis (e.g. a bootstrap of the gains)
    outcomes: npt.NDArray[np.int64]
    observed_outcomes: npt.NDArray[np.int64] | None
    model_risk: npt.NDArray[np.float64]
    baseline_risk: npt.NDArray[np.float64]


def truly_churned(
    truth: pa.Table, person_ids: list[str], as_of: date, horizon_days: int
) -> npt.NDArray[np.int64]:
    """1 where the person's simulated `churn_day` is on or before as_of + horizon_days.

    A person is matched by the user id of a simulated user who logged in, else by the
    anonymous id (the text id `person_features` gives a person)."""
    until = as_of + timedelta(days=horizon_days)
    churn_day: dict[str, date | None] = {}
    for row in truth.select(["anonymous_id", "user_id", "churn_day"]).to_pylist():
        churn_day[row["anonymous_id"]] = row["churn_day"]
        if row["user_id"] is not None:
            churn_day[row["user_id"]] = row["churn_day"]
    missing = [p for p in person_ids if p not in churn_day]
    if missing:
        raise ValueError(f"{len(missing)} persons are not in the ground truth, e.g. {missing[0]}")
    return np.array(
        [int(churn_day[p] is not None and churn_day[p] <= until) for p in person_ids],  # type: ignore[operator]
        dtype=np.int64,
    )


def evaluate_on_simulation(
    store: EventStore,
    app: App,
    truth: pa.Table,
    as_of: date,
    horizon_days: int,
    progress: Progress | None = None,
) -> tuple[Evaluation, RiskModel]:
    """Fit at T = `as_of` on the training persons, then compare model and baseline on the
    held-out persons against the ground truth (see the module docstring)."""
    steps = 5

    def step(stage: str, done: int) -> None:
        if progress:
            progress(stage, done, steps)

    t0 = training_day(store, app.app_id, as_of, horizon_days)
    before = person_features(store, app.app_id, app.timezone, t0)
    y0 = observed_labels(store, app, before, t0, horizon_days)
    step("features", 1)
    learn = ~held_out(before.column("person_id").to_pylist())
    model, baseline = fit_pair(feature_matrix(before, FEATURE_NAMES)[learn], y0[learn])
    step("fit", 2)
    now = person_features(store, app.app_id, app.timezone, as_of)
    aside = held_out(now.column("person_id").to_pylist())
    scored = now.filter(pa.array(aside))
    persons = scored.column("person_id").to_pylist()
    p_model = model.risk(scored)
    p_base = baseline.risk_of(feature_matrix(scored, (RECENCY,)))
    step("score", 3)
    y_true = truly_churned(truth, persons, as_of, horizon_days)
    vs_truth = Comparison(figures(y_true, p_model), figures(y_true, p_base))
    observed, y_seen = None, None
    last = latest_day(store, app.app_id)
    if last is not None and last >= as_of + timedelta(days=horizon_days):
        y_seen = observed_labels(store, app, now, as_of, horizon_days)[aside]
        observed = Comparison(figures(y_seen, p_model), figures(y_seen, p_base))
    step("evaluate", 4)
    evaluation = Evaluation(
        as_of,
        t0,
        horizon_days,
        int(learn.sum()),
        len(persons),
        vs_truth,
        observed,
        y_true,
        y_seen,
        p_model,
        p_base,
    )
    step("done", 5)
    return evaluation, model


def evaluation_json(e: Evaluation) -> dict[str, Any]:
    """The figures of `e` as plain data (for `--json` and the bench)."""

    def comparison(c: Comparison | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {
            "model": c.model.__dict__,
            "baseline": c.baseline.__dict__,
            "roc_auc_gain": c.roc_auc_gain,
            "pr_auc_gain": c.pr_auc_gain,
            "brier_gain": c.brier_gain,
        }

    return {
        "as_of": e.as_of.isoformat(),
        "features_as_of": e.features_as_of.isoformat(),
        "horizon_days": e.horizon_days,
        "training_persons": e.training_persons,
        "held_out_persons": e.held_out_persons,
        "truth": comparison(e.truth),
        "observed": comparison(e.observed),
    }
