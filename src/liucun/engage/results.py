"""Campaign results: treatment against holdout on conversion, revisits and spend, with lift,
confidence intervals and an SRM check of the split.

Definitions, per assigned user, over the window from the assignment instant to
`window_days` × 24 hours later (cut at `now` while it is still open):
- conversion: 1 if the user did the campaign's `conversion_event` in the window, else 0;
- revisits: app-local days with at least one event of the user in the window;
- spend: the sum of `amount` (yuan) of the user's events in the window.
Users are their `user_id`; events are read from the event store through its SQL dialect
(DuckDB, ClickHouse), one query per assignment instant (a run assigns its users at one
instant). Lift, intervals and SRM: stats.py (gbstats' definitions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from liucun.engage.campaigns import Campaign, campaign_rules, find_campaign
from liucun.engage.stats import Lift, Sample, Srm, lift, srm_check
from liucun.loyalty.members import as_utc
from liucun.state.apps import App
from liucun.state.tables import campaign_actions, campaign_assignments
from liucun.warehouse.store import EventStore

METRICS = ("conversion", "revisits", "spend")
ARMS = ("treatment", "holdout")


@dataclass(frozen=True)
class UserMetrics:
    conversion: float
    revisits: float
    spend: float


@dataclass(frozen=True)
class CampaignResults:
    campaign: Campaign
    users: dict[str, int]  # per arm
    complete: dict[str, int]  # per arm: users whose window has closed
    samples: dict[str, dict[str, Sample]]  # metric → arm → sample
    lifts: dict[str, Lift]
    srm: Srm
    actions: dict[str, int]  # action rows by status
    spent_fen: int

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign.campaign_id,
            "name": self.campaign.name,
            "conversion_event": self.campaign.conversion_event,
            "window_days": self.campaign.window_days,
            "users": self.users,
            "complete": self.complete,
            "metrics": {
                m: {
                    "treatment": {"n": s["treatment"].n, "mean": s["treatment"].mean},
                    "holdout": {"n": s["holdout"].n, "mean": s["holdout"].mean},
                    "lift": self.lifts[m].as_json(),
                }
                for m, s in self.samples.items()
            },
            "srm": self.srm.as_json(),
            "actions": self.actions,
            "spent_yuan": self.spent_fen / 100,
        }


def _assignments(engine: sa.Engine, campaign_id: str) -> list[tuple[str, str, datetime]]:
    a = campaign_assignments.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.user_id, a.arm, a.assigned_at).where(a.campaign_id == campaign_id)
        ).all()
    return [(r.user_id, r.arm, as_utc(r.assigned_at)) for r in rows]


def _action_counts(engine: sa.Engine, campaign_id: str) -> dict[str, int]:
    a = campaign_actions.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.status, sa.func.count())
            .where(a.campaign_id == campaign_id)
            .group_by(a.status)
        ).all()
    return {status: int(n) for status, n in rows}


def window_metrics(
    store: EventStore,
    app: App,
    event: str,
    start: datetime,
    end: datetime,
) -> dict[str, UserMetrics]:
    """Each user's conversion, revisits and spend from `start` up to (not including) `end`;
    users without events in it are left out (all zero)."""
    d = store.dialect
    sql = f"""
    SELECT user_id,
           sum(CASE WHEN event = {d.param("conversion")} THEN 1 ELSE 0 END) AS conversions,
           count(DISTINCT {d.local_date("ts", d.quote(app.timezone))}) AS active_days,
           sum(amount) AS spend
    FROM events
    WHERE app_id = {d.param("app")} AND user_id IS NOT NULL
      AND ts >= {d.param("ts_first")} AND ts < {d.param("ts_end")}
    GROUP BY user_id
    """
    params = {"app": app.app_id, "conversion": event, "ts_first": start, "ts_end": end}
    out = {}
    for r in store.query(sql, params).to_pylist():
        spend = r["spend"]
        out[r["user_id"]] = UserMetrics(
            1.0 if int(r["conversions"]) > 0 else 0.0,
            float(r["active_days"]),
            float(Decimal(str(spend))) if spend is not None else 0.0,
        )
    return out


def campaign_results(
    store: EventStore, engine: sa.Engine, app: App, ref: str, now: datetime
) -> CampaignResults:
    """The campaign's results as of `now` (module docstring)."""
    campaign = find_campaign(engine, app.app_id, ref)
    rules = campaign_rules(engine, app.app_id)
    window = timedelta(days=campaign.window_days)
    cohorts: dict[datetime, list[tuple[str, str]]] = defaultdict(list)
    for user, arm, at in _assignments(engine, campaign.campaign_id):
        cohorts[at].append((user, arm))
    values: dict[str, dict[str, list[float]]] = {m: {a: [] for a in ARMS} for m in METRICS}
    users = dict.fromkeys(ARMS, 0)
    complete = dict.fromkeys(ARMS, 0)
    zero = UserMetrics(0.0, 0.0, 0.0)
    for at, members in sorted(cohorts.items()):
        end = min(at + window, now)
        seen = window_metrics(store, app, campaign.conversion_event, at, end) if end > at else {}
        for user, arm in members:
            if arm not in users:
                continue
            users[arm] += 1
            complete[arm] += 1 if at + window <= now else 0
            m = seen.get(user, zero)
            values["conversion"][arm].append(m.conversion)
            values["revisits"][arm].append(m.revisits)
            values["spend"][arm].append(m.spend)
    samples = {m: {a: Sample.of(values[m][a]) for a in ARMS} for m in METRICS}
    lifts = {
        m: lift(samples[m]["treatment"], samples[m]["holdout"], rules.confidence) for m in METRICS
    }
    shares = {"treatment": 1 - campaign.holdout_share, "holdout": campaign.holdout_share}
    srm = srm_check(users, shares, rules.srm_p_value)
    return CampaignResults(
        campaign,
        users,
        complete,
        samples,
        lifts,
        srm,
        _action_counts(engine, campaign.campaign_id),
        campaign.spent_fen,
    )
