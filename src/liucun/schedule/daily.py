"""An app's daily run for one app-local day: lifecycle labels, churn-risk scores (retraining
the model when it is due), the alert rules and their delivery, then the loyalty jobs (expired
points, level reviews, expired group buys and help-unlocks), the segment refresh (rule tags
and named segments, docs/segments.md), then the engage campaigns
due that day (docs/campaigns.md).

The steps run in that order because each reads the one before (risk alerts read the scores);
a step that cannot run (too little history to train, say) is skipped with its reason and the
others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.lifecycle.daily import plan_labels, run_labels
from liucun.lifecycle.risk import RiskError, latest_model, train
from liucun.lifecycle.risk_scores import score
from liucun.lifecycle.webhook import check_and_deliver
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.warehouse.store import EventStore

STEPS = ("labels", "risk", "alerts", "loyalty", "segments", "campaigns")


@dataclass
class DailyReport:
    """What each step did (`status`: done, skipped or failed, with figures or the reason)."""

    app_id: str
    day: date
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s["status"] != "failed" for s in self.steps.values())


def _labels(store: EventStore, state: sa.Engine, app: App, day: date) -> dict[str, Any]:
    plan = plan_labels(store, state, app, day, day, relabel=False)
    counts = run_labels(store, state, app, plan)[-1].counts
    return {"status": "done", "computed_days": plan.days_to_compute, "counts": counts}


def _risk(store: EventStore, state: sa.Engine, app: App, day: date) -> dict[str, Any]:
    settings = playbook_in_force(state, app.app_id).playbook.risk
    out: dict[str, Any] = {"status": "done", "trained": None}
    model = latest_model(state, app.app_id)
    labels_end = None if model is None else model.features_as_of + timedelta(model.horizon_days)
    if labels_end is None or (day - labels_end).days >= settings.retrain_days:
        try:
            trained = train(store, state, app, settings, as_of=day)
            out["trained"] = {"model_id": trained.model_id, "as_of": trained.as_of}
        except RiskError as exc:
            if model is None:
                return {"status": "skipped", "reason": str(exc)}
            out["retrain_skipped"] = str(exc)  # the older model still scores
    scored = score(store, state, app, settings, as_of=day)
    out.update(scored=scored.persons, high_risk=scored.high_risk, model_id=scored.model_id)
    return out


def _alerts(store: EventStore, state: sa.Engine, app: App, day: date) -> dict[str, Any]:
    playbook = playbook_in_force(state, app.app_id).playbook
    report = check_and_deliver(store, state, app, day, playbook)
    return {
        "status": "done",
        "alerts": len(report.alerts),
        "new": sum(1 for _, new in report.alerts if new),
        "delivered": report.delivery.delivered,
        "pending": report.delivery.pending,
    }


def _loyalty(store: EventStore, state: sa.Engine, app: App, day: date) -> dict[str, Any]:
    from liucun.loyalty.jobs import run_loyalty_jobs
    from liucun.loyalty.programme import programme_of

    # the loyalty jobs act on the present (points expire at an instant), not on `day`
    return {
        "status": "done",
        **run_loyalty_jobs(state, programme_of(state, app), datetime.now(UTC)),
    }


def _segments(store: EventStore, state: sa.Engine, app: App, day: date) -> dict[str, Any]:
    from liucun.engage.segments import refresh_all

    # rule tags, then named segments, as of `day` (reading the labels and scores just made)
    reports = refresh_all(store, state, app, day, datetime.now(UTC))
    return {
        "status": "done",
        "segments": {
            r.segment: {"size": r.size, "entered": r.entered, "left": r.left} for r in reports
        },
    }


def _campaigns(store: EventStore, state: sa.Engine, app: App, day: date) -> dict[str, Any]:
    from liucun.engage.runner import run_due_campaigns

    # campaigns run at their app-local time on the present day (after the segments step
    # refreshed membership), not on `day`: their actions happen now
    return run_due_campaigns(store, state, app, datetime.now(UTC))


_STEP_FUNCTIONS: dict[str, Callable[[EventStore, sa.Engine, App, date], dict[str, Any]]] = {
    "labels": _labels,
    "risk": _risk,
    "alerts": _alerts,
    "loyalty": _loyalty,
    "segments": _segments,
    "campaigns": _campaigns,
}


def run_daily(
    store: EventStore,
    state: sa.Engine,
    app: App,
    day: date,
    on_step: Callable[[str, dict[str, Any]], None] | None = None,
) -> DailyReport:
    """Run every step for `app` on app-local `day`; a failing step is recorded, not raised."""
    report = DailyReport(app.app_id, day)
    for name in STEPS:
        try:
            result = _STEP_FUNCTIONS[name](store, state, app, day)
        except RiskError as exc:
            result = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # one step's fault must not stop the others
            result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        report.steps[name] = result
        if on_step is not None:
            on_step(name, result)
    return report
