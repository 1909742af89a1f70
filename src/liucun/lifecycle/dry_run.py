"""A playbook dry run: what a candidate playbook would change in labels and alerts, written
nowhere, before an operator puts it in force.

Against the playbook in force, over the `days` app-local days ending `as_of` (default: the
latest day with data):
- labels: every person's lifecycle label on `as_of` under each playbook; the counts per
  label under both, how many persons would change label, and the most common moves;
- alerts: the alert rules of each playbook checked on `as_of` and every 7 days before it
  within the span (weekly and monthly rules look back from the day checked, so weekly checks
  cover the span); an alert is one (kind, scope, subject, period). Each is `both`, `only_live`
  or `only_new`; app alerts are listed, user alerts counted.
Nothing is stored: the label and alert functions are the daily job's, called without their
writes. Before the app has any event, `labels` and `alerts` are null: only the settings differ.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.analytics.activity_source import latest_day
from liucun.lifecycle.alerts import Alert, check_alerts
from liucun.lifecycle.label_names import LABELS
from liucun.lifecycle.labels import labels_as_of
from liucun.playbook.schema import Playbook
from liucun.playbook.store import playbook_changes, playbook_in_force, unified_diff
from liucun.state.apps import App
from liucun.warehouse.store import EventStore

MIN_DAYS, MAX_DAYS = 1, 90
CHECK_EVERY_DAYS = 7
TOP_MOVES = 10


class DryRunError(ValueError):
    """The dry run cannot be made as asked; the message says what to change."""


AlertKey = tuple[str, str, str, str]


def _key(a: Alert) -> AlertKey:
    return (a.kind, a.scope, a.subject, a.period)


def _check_days(as_of: date, days: int) -> list[date]:
    return [as_of - timedelta(days=k) for k in range(0, days, CHECK_EVERY_DAYS)]


def _alerts(
    store: EventStore, state: sa.Engine, app: App, playbook: Playbook, check_days: list[date]
) -> dict[AlertKey, Alert]:
    found: dict[AlertKey, Alert] = {}
    for day in check_days:
        for a in check_alerts(store, state, app, day, playbook):
            found.setdefault(_key(a), a)
    return found


def _alert_json(a: Alert, where: str) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "period": a.period,
        "severity": a.severity,
        "title": {"zh": a.title_zh, "en": a.title_en},
        "action": {"zh": a.action_zh, "en": a.action_en},
        "figures": a.figures,
        "in": where,
    }


def _compare_alerts(live: dict[AlertKey, Alert], new: dict[AlertKey, Alert]) -> dict[str, Any]:
    def where(k: AlertKey) -> str:
        return "both" if k in live and k in new else "only_live" if k in live else "only_new"

    keys = sorted(set(live) | set(new))
    user_counts: Counter[tuple[str, str]] = Counter(
        (k[0], where(k)) for k in keys if k[1] == "user"
    )
    return {
        "live": len(live),
        "new": len(new),
        "app": [_alert_json(new.get(k) or live[k], where(k)) for k in keys if k[1] == "app"],
        "user": [
            {"kind": kind, "in": w, "persons": n} for (kind, w), n in sorted(user_counts.items())
        ],
    }


def _compare_labels(
    store: EventStore, app: App, live: Playbook, new: Playbook, as_of: date
) -> dict[str, Any]:
    before = labels_as_of(store, app.app_id, app.timezone, live.churn, as_of)
    after = labels_as_of(store, app.app_id, app.timezone, new.churn, as_of)
    old_label = dict(zip(before.persons, before.labels, strict=True))
    moves: Counter[tuple[str, str]] = Counter()
    for person, label in zip(after.persons, after.labels, strict=True):
        was = old_label.get(person, "none")
        if was != label:
            moves[(was, label)] += 1
    for person in set(old_label) - set(after.persons):
        moves[(old_label[person], "none")] += 1
    live_counts, new_counts = before.counts(), after.counts()
    return {
        "as_of": as_of.isoformat(),
        "counts": [{"label": x, "live": live_counts[x], "new": new_counts[x]} for x in LABELS],
        "changed": sum(moves.values()),
        "moves": [{"from": a, "to": b, "persons": n} for (a, b), n in moves.most_common(TOP_MOVES)],
    }


def dry_run_playbook(
    store: EventStore,
    state: sa.Engine,
    app: App,
    text: str,
    candidate: Playbook,
    as_of: date | None = None,
    days: int = 30,
) -> dict[str, Any]:
    """What putting `candidate` (written as `text`) in force would change (module docstring)."""
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise DryRunError(f"days {days}: from {MIN_DAYS} to {MAX_DAYS}")
    in_force = playbook_in_force(state, app.app_id)
    live = in_force.playbook
    settings = {
        "revision": in_force.revision,
        "changes": [asdict(c) for c in playbook_changes(live, candidate)],
        "diff": unified_diff(in_force.text, text),
    }
    last = as_of or latest_day(store, app.app_id)
    if last is None:  # no events yet: what would change is the settings alone
        return {"as_of": None, "from": None, **settings, "labels": None, "alerts": None}
    checks = _check_days(last, days)
    return {
        "as_of": last.isoformat(),
        "from": (last - timedelta(days=days - 1)).isoformat(),
        **settings,
        "labels": _compare_labels(store, app, live, candidate, last),
        "alerts": {
            "checked": [d.isoformat() for d in checks],
            **_compare_alerts(
                _alerts(store, state, app, live, checks),
                _alerts(store, state, app, candidate, checks),
            ),
        },
    }
