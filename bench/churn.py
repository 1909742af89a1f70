"""Churn-risk model against the simulator's ground truth and a recency-only baseline.

    python bench/churn.py [--users 20000] [--days 90] [--horizon 30] [--seeds 42]
                          [--boot 500] [--data DIR]

For each seed: simulate `--users` users over `--days` days (e-commerce, Asia/Shanghai), ingest
them into a DuckDB event store, and run `liucun.lifecycle.risk_eval.evaluate_on_simulation` at
T = the last day − horizon (so that the truth of the horizon after T is inside the simulated
window): the model and the baseline (a logistic regression on days since last activity,
calibrated the same way) are fitted on features at T − horizon with the labels observed up to
T, on the persons outside the held-out hash split; both then score the held-out persons at T.

Printed per seed, against the truth (simulated churn_day ≤ T + horizon) and against the label
observed after T: ROC-AUC, PR-AUC (average precision) and Brier score of both, the gains
(model − baseline for the AUCs, baseline − model for Brier) and a 95% paired bootstrap
interval of each gain (`--boot` resamples of the held-out persons). `--data DIR`
keeps the stores and reuses them. Prints figures; asserts nothing.

With 90 days the training day T − horizon is day 29: the model learns from persons seen for a
month at most and scores persons seen for up to three; `--days 150` puts both days past the
90-day scope, as an app with history has them (docs/churn-risk.md gives both).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from liucun.events.columnar import complete_table
from liucun.lifecycle.risk_eval import Comparison, Evaluation, evaluate_on_simulation
from liucun.sim import SimConfig, ground_truth, simulate
from liucun.state.apps import App
from liucun.warehouse.duckdb_store import DuckDBEventStore

APP = "bench"


def stored(config: SimConfig, directory: Path) -> DuckDBEventStore:
    """The simulated population in a DuckDB store under `directory` (reused when present)."""
    path = directory / f"churn-{config.users}-{config.days}-{config.seed}.duckdb"
    if not path.exists():
        started = time.perf_counter()
        # written under another name and renamed when complete: an interrupted run leaves
        # nothing that a later run would take for the whole population
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        store = DuckDBEventStore(str(partial))
        received, events = datetime.now(UTC), 0
        for chunk in simulate(config):
            events += chunk.num_rows
            store.append(complete_table(chunk, APP, received), {APP: config.timezone})
        store.close()
        partial.rename(path)
        print(f"  simulated and stored {events:,} events in {time.perf_counter() - started:.1f} s")
    return DuckDBEventStore(str(path), read_only=True)


def interval(
    y: npt.NDArray[np.int64],
    model: npt.NDArray[np.float64],
    baseline: npt.NDArray[np.float64],
    resamples: int,
) -> dict[str, tuple[float, float]]:
    """95% paired bootstrap intervals of the three gains over the held-out persons."""
    rng = np.random.default_rng(0)
    gains: dict[str, list[float]] = {"roc_auc": [], "pr_auc": [], "brier": []}
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        gains["roc_auc"].append(roc_auc_score(y[i], model[i]) - roc_auc_score(y[i], baseline[i]))
        gains["pr_auc"].append(
            average_precision_score(y[i], model[i]) - average_precision_score(y[i], baseline[i])
        )
        gains["brier"].append(
            brier_score_loss(y[i], baseline[i]) - brier_score_loss(y[i], model[i])
        )
    return {
        k: (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))) for k, v in gains.items()
    }


def show(name: str, c: Comparison, ci: dict[str, tuple[float, float]] | None) -> None:
    m, b = c.model, c.baseline
    print(f"  against {name}: {m.persons:,} held-out persons, {m.churn_rate:.1%} churned")
    print(f"    {'':10s} {'model':>8s} {'baseline':>9s} {'gain':>8s}  95% interval")
    rows = [
        ("ROC-AUC", m.roc_auc, b.roc_auc, c.roc_auc_gain, "roc_auc"),
        ("PR-AUC", m.pr_auc, b.pr_auc, c.pr_auc_gain, "pr_auc"),
        ("Brier", m.brier, b.brier, c.brier_gain, "brier"),
    ]
    for label, mv, bv, gain, key in rows:
        span = f"[{ci[key][0]:+.4f}, {ci[key][1]:+.4f}]" if ci else ""
        print(f"    {label:10s} {mv:8.4f} {bv:9.4f} {gain:+8.4f}  {span}")
    print(f"    mean risk: model {m.mean_risk:.3f}, baseline {b.mean_risk:.3f}")


def run(config: SimConfig, horizon: int, resamples: int, directory: Path) -> Evaluation:
    store = stored(config, directory)
    try:
        as_of = config.start + timedelta(days=config.days - 1 - horizon)
        app = App(APP, APP, config.timezone, "")
        started = time.perf_counter()
        evaluation, _ = evaluate_on_simulation(store, app, ground_truth(config), as_of, horizon)
        seconds = time.perf_counter() - started
    finally:
        store.close()
    print(
        f"  T = {as_of}, features for training at {evaluation.features_as_of}, "
        f"{evaluation.training_persons:,} training persons; fit and evaluated in {seconds:.1f} s"
    )
    ci = interval(evaluation.outcomes, evaluation.model_risk, evaluation.baseline_risk, resamples)
    show("the truth (churn_day ≤ T + horizon)", evaluation.truth, ci)
    if evaluation.observed is not None and evaluation.observed_outcomes is not None:
        seen = interval(
            evaluation.observed_outcomes,
            evaluation.model_risk,
            evaluation.baseline_risk,
            resamples,
        )
        show("the observed label (no event in the horizon)", evaluation.observed, seen)
    return evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--boot", type=int, default=500)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    directory = args.data or Path(tempfile.mkdtemp(prefix="liucun-churn-"))
    directory.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for seed in args.seeds:
            config = SimConfig(users=args.users, days=args.days, seed=seed)
            print(f"seed {seed}: {args.users:,} users, {args.days} days, horizon {args.horizon}")
            results.append(run(config, args.horizon, args.boot, directory))
    finally:
        if args.data is None:
            shutil.rmtree(directory, ignore_errors=True)
    if len(results) > 1:
        print("gains over seeds (min / mean / max):")
        for label, pick in (("truth", lambda e: e.truth), ("observed", lambda e: e.observed)):
            rows = [pick(e) for e in results if pick(e) is not None]
            gains = np.array([(c.roc_auc_gain, c.pr_auc_gain, c.brier_gain) for c in rows])
            for k, name in enumerate(("ROC-AUC", "PR-AUC", "Brier")):
                g = gains[:, k]
                print(f"  {label:8s} {name:8s} {g.min():+.4f} / {g.mean():+.4f} / {g.max():+.4f}")


if __name__ == "__main__":
    main()
