"""The churn-risk model: trained on a time split, calibrated, explained per person, and scored.

- Time split: to train as of day T with horizon h, features are taken at T0 = T − h
  (`features.person_features`) and labelled by what happened in (T0, T]
  (`features.churn_labels`): nothing after T is read, and the model then scores persons at T.
- Held-out persons: a deterministic hash of the person id puts 20% aside; the model and the
  recency-only baseline are fitted on the rest and compared on them.
- Model: scikit-learn's HistGradientBoostingClassifier, calibrated with CalibratedClassifierCV
  (Platt's sigmoid) on 5 stratified folds: each fold's booster is fitted on the other four
  folds and calibrated on its own, and the risk is the mean of the five calibrated members.
  Sigmoid, not isotonic: it is monotone and smooth, so it keeps the booster's ranking and gives
  no flat steps in which a reason's effect would vanish, and two parameters are learnt well
  from a fold of a few hundred persons.
- Reasons: a feature pushes a person's risk up by the drop in risk when that feature alone is
  set to its healthy reference (the median among training persons who stayed); the largest
  positive ones are kept.
"""

from __future__ import annotations

import hashlib
import io
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import sqlalchemy as sa
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from liucun.analytics.activity_source import first_day, latest_day
from liucun.lifecycle.features import (
    FEATURE_NAMES,
    FEATURES_BY_NAME,
    FeatureError,
    churn_labels,
    person_features,
)
from liucun.playbook.risk import RiskSettings
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.state.tables import churn_models
from liucun.warehouse.store import EventStore

Matrix = npt.NDArray[np.float64]
# share of persons (by hash of their id) kept out of training to measure the model on
HELD_OUT_PERCENT = 20
FOLDS = 5
# persons whose reasons are computed together (their variants take 8 × features × this bytes)
REASON_CHUNK = 4_000
SEED = 0
RECENCY = "recency_days"
# (stage, zh, units of work): what `train` reports to its progress callback
STAGES = (
    ("features", "特征", 1),
    ("labels", "标签", 1),
    ("fit", "拟合", FOLDS),
    ("calibrate", "校准", FOLDS),
    ("evaluate", "评估", 1),
    ("save", "保存", 1),
)
TRAIN_STEPS = sum(units for _, _, units in STAGES)
# stage name, units done so far, units in all
Progress = Callable[[str, int, int], None]


class RiskError(ValueError):
    """The model cannot be trained or applied as asked; the message says what to do."""


def held_out(person_ids: Sequence[str]) -> npt.NDArray[np.bool_]:
    """True for the persons kept out of training: those whose id hashes (BLAKE2b, 64 bits)
    to a value below HELD_OUT_PERCENT modulo 100 — the same persons on every run."""
    buckets = [
        int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8).digest(), "big") % 100
        for p in person_ids
    ]
    return np.array(buckets, dtype=np.int64) < HELD_OUT_PERCENT


def feature_matrix(table: pa.Table, names: Sequence[str]) -> Matrix:
    """The columns `names` of a features table as floats, null as NaN."""
    columns = [
        np.asarray(table.column(n).to_numpy(zero_copy_only=False), dtype=np.float64) for n in names
    ]
    return np.column_stack(columns) if columns else np.empty((table.num_rows, 0))


# Where the direction is known, the risk may only move one way as the feature grows: a longer
# silence never lowers it, more active days never raise it, and slower loads never lower it (the
# seeds: each extra second of load ≈ +30% churn). This keeps a small, noisy training set from
# learning wiggles, and keeps a silence longer than any seen in training at the highest risk.
MONOTONE = {
    "recency_days": 1,
    "recency_to_gap": 1,
    "silence_surprise": 1,
    "active_days_7": -1,
    "active_days_30": -1,
    "load_ms_mean": 1,
    "slow_load_share": 1,
}


def _booster() -> HistGradientBoostingClassifier:
    # small trees, few rounds and a floor on leaf size: the label is noisy and a training set
    # may hold a few hundred persons (bench/churn.py: larger models score lower on held-out
    # users); missing values (no load measured) are handled natively
    return HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.1,
        max_leaf_nodes=8,
        min_samples_leaf=40,
        l2_regularization=1.0,
        monotonic_cst=[MONOTONE.get(name, 0) for name in FEATURE_NAMES],
        random_state=SEED,
    )


def _recency_logit() -> LogisticRegression:
    return LogisticRegression()


@dataclass(frozen=True)
class RiskModel:
    """Calibrated members (one per fold) over `features`; `reference` holds each feature's
    healthy value (median among persons who stayed; NaN when unknown)."""

    features: tuple[str, ...]
    members: tuple[Any, ...]
    reference: tuple[float, ...]

    def risk_of(self, x: Matrix) -> npt.NDArray[np.float64]:
        """The mean calibrated probability of churn of each row of matrix `x`."""
        total = np.zeros(len(x))
        for member in self.members:
            total += member.predict_proba(x)[:, 1]
        return total / len(self.members)

    def risk(self, features: pa.Table) -> npt.NDArray[np.float64]:
        """The risk of each person of a `person_features` table."""
        return self.risk_of(feature_matrix(features, self.features))


def fit_calibrated(
    make: Callable[[], Any],
    x: Matrix,
    y: npt.NDArray[np.int64],
    features: Sequence[str],
    on_unit: Callable[[str], None] | None = None,
) -> RiskModel:
    """Fit `make()` on each 4/5 of the rows (stratified folds), calibrate each with Platt's
    sigmoid (CalibratedClassifierCV) on its left-out fifth, and keep the healthy references."""
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(x, y))
    fitted = []
    for fit_rows, _ in folds:
        fitted.append(make().fit(x[fit_rows], y[fit_rows]))
        if on_unit:
            on_unit("fit")
    members = []
    for estimator, (_, calibration_rows) in zip(fitted, folds, strict=True):
        calibrated = CalibratedClassifierCV(FrozenEstimator(estimator), method="sigmoid")
        members.append(calibrated.fit(x[calibration_rows], y[calibration_rows]))
        if on_unit:
            on_unit("calibrate")
    stayed = x[y == 0]
    reference = tuple(
        float(np.nanmedian(stayed[:, j])) if np.isfinite(stayed[:, j]).any() else math.nan
        for j in range(x.shape[1])
    )
    return RiskModel(tuple(features), tuple(members), reference)


@dataclass(frozen=True)
class Reason:
    """A feature that pushes the person's risk up: its value, the healthy reference, and the
    risk it adds (risk − risk with this feature alone at the reference)."""

    feature: str
    zh: str
    en: str
    value: float | None
    reference: float
    contribution: float


def reasons(model: RiskModel, x: Matrix, limit: int) -> list[list[Reason]]:
    """Per row of `x`, at most `limit` reasons, the largest contribution first. A feature whose
    value or reference is missing gives no reason; nor does one that does not raise the risk."""
    out: list[list[Reason]] = []
    for start in range(0, len(x), REASON_CHUNK):
        chunk = x[start : start + REASON_CHUNK]
        gains = _gains(model, chunk)
        for i in range(len(chunk)):
            order = [j for j in np.argsort(-gains[i], kind="stable")[:limit] if gains[i, j] > 0]
            out.append([_reason(model, j, chunk[i, j], float(gains[i, j])) for j in order])
    return out


def _gains(model: RiskModel, x: Matrix) -> Matrix:
    """Risk minus risk with feature j alone at its reference, per row and feature (-inf where
    the feature cannot be moved)."""
    base = model.risk_of(x)
    gains = np.full(x.shape, -np.inf)
    # every (person, feature) variant in one prediction: a call per feature costs more in
    # per-call overhead than in trees on a few thousand rows
    blocks, where = [], []
    for j, ref in enumerate(model.reference):
        rows = np.flatnonzero(~np.isnan(x[:, j]) & (x[:, j] != ref))
        if math.isnan(ref) or len(rows) == 0:
            continue
        block = x[rows]
        block[:, j] = ref
        blocks.append(block)
        where.append((j, rows))
    if blocks:
        risks = model.risk_of(np.vstack(blocks))
        at = 0
        for j, rows in where:
            gains[rows, j] = base[rows] - risks[at : at + len(rows)]
            at += len(rows)
    return gains


def _reason(model: RiskModel, j: int, value: float, gain: float) -> Reason:
    feature = FEATURES_BY_NAME[model.features[j]]
    shown = None if math.isnan(value) else float(value)
    return Reason(feature.name, feature.zh, feature.en, shown, model.reference[j], gain)


@dataclass(frozen=True)
class Figures:
    """How well risks `p` match outcomes `y`: ROC-AUC, PR-AUC (average precision) and the
    Brier score (mean squared error of the probability; lower is better). AUCs are None when
    only one outcome occurs."""

    persons: int
    churned: int
    churn_rate: float
    mean_risk: float
    roc_auc: float | None
    pr_auc: float | None
    brier: float


def figures(y: npt.NDArray[np.int64], p: npt.NDArray[np.float64]) -> Figures:
    both = 0 < int(y.sum()) < len(y)
    return Figures(
        persons=len(y),
        churned=int(y.sum()),
        churn_rate=float(y.mean()) if len(y) else math.nan,
        mean_risk=float(p.mean()) if len(y) else math.nan,
        roc_auc=float(roc_auc_score(y, p)) if both else None,
        pr_auc=float(average_precision_score(y, p)) if both else None,
        brier=float(brier_score_loss(y, p)) if len(y) else math.nan,
    )


@dataclass(frozen=True)
class Trained:
    """A trained model: features at `features_as_of` (T − horizon), labels up to `as_of` (T),
    and its figures against the recency baseline on held-out persons."""

    model_id: str
    app_id: str
    as_of: date
    features_as_of: date
    horizon_days: int
    training_persons: int
    model: Figures
    baseline: Figures


def _reporter(progress: Progress | None) -> Callable[[str], None]:
    """A callback for each unit of work done; it tells `progress` the stage now running."""
    stage_of_unit = [name for name, _, units in STAGES for _ in range(units)]
    done = 0
    if progress:
        progress(stage_of_unit[0], 0, TRAIN_STEPS)

    def unit(stage: str) -> None:
        nonlocal done
        assert stage == stage_of_unit[done], (stage, done)
        done += 1
        if progress:
            progress(stage_of_unit[min(done, TRAIN_STEPS - 1)], done, TRAIN_STEPS)

    return unit


def training_day(store: EventStore, app_id: str, as_of: date | None, horizon_days: int) -> date:
    """The day T0 = as_of − horizon whose features the model learns from; RiskError when the
    data do not cover it and the horizon after it."""
    last, first = latest_day(store, app_id), first_day(store, app_id)
    if last is None or first is None:
        raise RiskError("the app has no events yet: ingest events, then train")
    as_of = as_of or last
    if as_of > last:
        raise RiskError(
            f"as-of day {as_of} is after the latest day with data ({last}): the labels "
            f"would not be observed; use --as-of {last} or earlier"
        )
    earliest = first + timedelta(days=horizon_days)
    if earliest > last:
        raise RiskError(
            f"too little history: the data cover {first} … {last}, and training needs more days "
            f"than the {horizon_days}-day horizon (features at as-of minus the horizon, labels "
            "after it); ingest more history or use a shorter --horizon"
        )
    if as_of < earliest:
        raise RiskError(
            f"too little history before {as_of}: features would be read at "
            f"{horizon_days} days earlier, before the first day with data ({first}); use "
            f"--as-of {earliest} or later, or a shorter --horizon"
        )
    return as_of - timedelta(days=horizon_days)


def observed_labels(
    store: EventStore, app: App, features: pa.Table, t0: date, horizon_days: int
) -> npt.NDArray[np.int64]:
    """The observed labels of the `horizon_days` after `t0`, aligned with `features` (at t0)."""
    try:
        labels = churn_labels(store, app.app_id, app.timezone, t0, horizon_days)
    except FeatureError as exc:
        raise RiskError(str(exc)) from None
    if not labels.column("person_key").equals(features.column("person_key")):
        raise RiskError("features and labels disagree on the persons: was data ingested meanwhile?")
    return labels.column("churned").to_numpy().astype(np.int64)


def fit_pair(
    x: Matrix, y: npt.NDArray[np.int64], on_unit: Callable[[str], None] | None = None
) -> tuple[RiskModel, RiskModel]:
    """The risk model over every feature and the recency-only baseline (a logistic regression
    on days since last activity, calibrated the same way)."""
    model = fit_calibrated(_booster, x, y, FEATURE_NAMES, on_unit)
    recency = FEATURE_NAMES.index(RECENCY)
    baseline = fit_calibrated(_recency_logit, x[:, [recency]], y, (RECENCY,))
    return model, baseline


def train(
    store: EventStore,
    state: sa.Engine,
    app: App,
    settings: RiskSettings,
    as_of: date | None = None,
    horizon_days: int | None = None,
    progress: Progress | None = None,
) -> Trained:
    """Train the app's churn-risk model as of `as_of` (default: the latest day with data) and
    store it; see the module docstring for the split, the model and the figures."""
    horizon = horizon_days or settings.horizon_days
    t0 = training_day(store, app.app_id, as_of, horizon)
    as_of = t0 + timedelta(days=horizon)
    unit = _reporter(progress)
    rules = playbook_in_force(state, app.app_id).playbook.churn
    features = person_features(store, app.app_id, app.timezone, t0, rules)
    unit("features")
    y = observed_labels(store, app, features, t0, horizon)
    unit("labels")
    aside = held_out(features.column("person_id").to_pylist())
    learn = ~aside
    n, churned = int(learn.sum()), int(y[learn].sum())
    if n < settings.min_training_persons:
        raise RiskError(
            f"only {n} training persons at {t0} (the playbook's risk.min_training_persons is "
            f"{settings.min_training_persons}): use a later --as-of or ingest more history"
        )
    if min(churned, n - churned) < settings.min_each_label:
        raise RiskError(
            f"{churned} of {n} training persons churned: each outcome needs at least "
            f"{settings.min_each_label} (risk.min_each_label); try another --horizon or --as-of"
        )
    if not aside.any():
        raise RiskError(f"no held-out persons at {t0} to measure the model on: ingest more users")
    x = feature_matrix(features, FEATURE_NAMES)
    model, baseline = fit_pair(x[learn], y[learn], unit)
    y_out = y[aside]
    held_model = figures(y_out, model.risk_of(x[aside]))
    held_baseline = figures(y_out, baseline.risk_of(x[aside][:, [FEATURE_NAMES.index(RECENCY)]]))
    unit("evaluate")
    trained = Trained(
        uuid.uuid4().hex, app.app_id, as_of, t0, horizon, n, held_model, held_baseline
    )
    save_model(state, trained, model)
    unit("save")
    return trained


def save_model(state: sa.Engine, trained: Trained, model: RiskModel) -> None:
    """Store `model` (joblib bytes) with its features and figures in `churn_models`."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    metrics = {
        "label_as_of": trained.as_of.isoformat(),
        "training_persons": trained.training_persons,
        "held_out": trained_json(trained)["held_out"],
    }
    with state.begin() as conn:
        conn.execute(
            churn_models.insert().values(
                model_id=trained.model_id,
                app_id=trained.app_id,
                trained_at=datetime.now(UTC),
                as_of=trained.features_as_of,
                horizon_days=trained.horizon_days,
                features=orjson.dumps(list(model.features)).decode(),
                metrics=orjson.dumps(metrics).decode(),
                model=buffer.getvalue(),
            )
        )


@dataclass(frozen=True)
class StoredModel:
    model_id: str
    trained_at: datetime
    features_as_of: date
    horizon_days: int
    metrics: dict[str, Any]
    model: RiskModel


def latest_model(state: sa.Engine, app_id: str) -> StoredModel | None:
    """The app's most recently trained model, loaded."""
    t = churn_models.c
    query = (
        sa.select(churn_models)
        .where(t.app_id == app_id)
        .order_by(t.trained_at.desc(), t.model_id)
        .limit(1)
    )
    with state.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    try:
        # our own bytes, written by `save_model` into the operator's state store
        model = joblib.load(io.BytesIO(row.model))
    except Exception as exc:  # written by another version of liucun or scikit-learn
        raise RiskError(
            f"the stored model {row.model_id} cannot be loaded ({exc}): run `liucun churn train` "
            "again"
        ) from None
    return StoredModel(
        row.model_id, row.trained_at, row.as_of, row.horizon_days, orjson.loads(row.metrics), model
    )


def trained_json(t: Trained) -> dict[str, Any]:
    """A trained model's figures as plain data (the CLI's `--json` and the API)."""
    gains: dict[str, float | None] = {
        "roc_auc": _gain(t.model.roc_auc, t.baseline.roc_auc),
        "pr_auc": _gain(t.model.pr_auc, t.baseline.pr_auc),
        "brier": t.baseline.brier - t.model.brier,
    }
    return {
        "model_id": t.model_id,
        "app_id": t.app_id,
        "as_of": t.as_of.isoformat(),
        "features_as_of": t.features_as_of.isoformat(),
        "horizon_days": t.horizon_days,
        "training_persons": t.training_persons,
        "held_out": {"model": asdict(t.model), "baseline": asdict(t.baseline), "gains": gains},
    }


def _gain(model: float | None, baseline: float | None) -> float | None:
    return None if model is None or baseline is None else model - baseline
