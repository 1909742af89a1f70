"""Win-back lists: silent and churned users ranked by value (RFM), grouped by why they left,
each with the playbook's offer for them.

Definitions (docs/lifecycle.md#win-back), as of app-local day D, over the RFM window of the
last `rfm_days` days up to D:
- R is scored from days since the last active day, F from active days, M from the paid amount;
  each 1–5 by quintile among the persons active in the window: the cut points q1..q4 are the
  20/40/60/80th percentiles (the lower data value, numpy's "lower" method), a score is 1 plus
  the cut points the value is above (for R: 5 minus the cut points the days-since is above).
  A person not active in the window scores 1, 1, 1. Value = R + F + M (3–15).
- main reason: the first reason of the person's churn-risk score when scored, else the first
  depth signal that held when they got their label, else how long they have been away, in
  buckets (0–6, 7–14, 15–29, 30–59, 60–89, 90+ days).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from liucun.lifecycle.daily import LifecycleError, data_day, plan_labels, run_labels
from liucun.lifecycle.label_history import Transition, labels_on
from liucun.playbook.churn import ChurnPreset
from liucun.playbook.store import playbook_in_force
from liucun.playbook.winback import Offer, WinbackRules
from liucun.state.apps import App
from liucun.state.tables import churn_scores
from liucun.warehouse.queries import person_days_sql, person_names_sql
from liucun.warehouse.store import EventStore


@dataclass(frozen=True)
class Rfm:
    last_active: date
    active_days: int
    orders: int
    amount: Decimal


@dataclass(frozen=True)
class WinbackEntry:
    person_id: str
    label: str
    since: date
    last_active: date | None
    days_inactive: int | None
    active_days: int
    orders: int
    amount: Decimal
    r: int
    f: int
    m: int
    value: int
    risk: float | None
    reason: str
    reason_zh: str
    reason_en: str
    offer: str | None
    offer_zh: str | None
    offer_en: str | None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["amount"] = str(self.amount)
        return out


def person_rfm(store: EventStore, app_id: str, as_of: date, window_days: int) -> dict[str, Rfm]:
    """Each person's last active day up to `as_of` and activity in the RFM window."""
    d = store.dialect
    inside = f"(CASE WHEN pd.day >= {d.param('from')} THEN 1 ELSE 0 END)"
    sql = f"""
    SELECT names.person AS person, max(pd.day) AS last_day,
           sum({inside}) AS active_days, sum(pd.orders * {inside}) AS orders,
           sum(pd.amount * {inside}) AS amount
    FROM ({person_days_sql(d, d.param("app"))}) pd
    JOIN ({person_names_sql(d.param("app"))}) names ON names.person_id = pd.person_id
    WHERE pd.day <= {d.param("as_of")}
    GROUP BY names.person
    """
    first = as_of - timedelta(days=window_days - 1)
    rows = store.query(sql, {"app": app_id, "as_of": as_of, "from": first}).to_pylist()
    return {
        r["person"]: Rfm(
            r["last_day"], int(r["active_days"]), int(r["orders"]), Decimal(str(r["amount"]))
        )
        for r in rows
    }


def quintile_scores(
    values: npt.NDArray[np.float64], population: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """1 + how many of the population's 20/40/60/80th percentiles (lower data value) each
    value is above; all 1 for an empty population."""
    if len(population) == 0:
        return np.ones(len(values), dtype=np.int64)
    cuts = np.percentile(population, [20, 40, 60, 80], method="lower")
    return 1 + (values[:, None] > cuts[None, :]).sum(axis=1)


def rfm_scores(rfm: dict[str, Rfm], as_of: date) -> dict[str, tuple[int, int, int]]:
    """(R, F, M) of every person in `rfm` (module docstring)."""
    persons = list(rfm)
    active = np.array([rfm[p].active_days > 0 for p in persons], dtype=bool)
    since = np.array([(as_of - rfm[p].last_active).days for p in persons], dtype=np.float64)
    days = np.array([rfm[p].active_days for p in persons], dtype=np.float64)
    money = np.array([float(rfm[p].amount) for p in persons], dtype=np.float64)
    r = 6 - quintile_scores(since, since[active])
    f = quintile_scores(days, days[active])
    m = quintile_scores(money, money[active])
    return {
        p: (int(r[i]), int(f[i]), int(m[i])) if active[i] else (1, 1, 1)
        for i, p in enumerate(persons)
    }


def _risk_reasons(engine: sa.Engine, app_id: str) -> dict[str, tuple[float, dict[str, Any] | None]]:
    t = churn_scores
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.person_id, t.c.risk, t.c.reasons).where(t.c.app_id == app_id)
        ).all()
    out = {}
    for r in rows:
        reasons = json.loads(r.reasons) if r.reasons else []
        out[r.person_id] = (float(r.risk), reasons[0] if reasons else None)
    return out


def main_reason(
    transition: Transition,
    risk_reason: dict[str, Any] | None,
    preset: ChurnPreset,
    days_inactive: int | None,
) -> tuple[str, str, str]:
    """(key, zh, en) of why a person is on the list (module docstring)."""
    if risk_reason is not None:
        feature = str(risk_reason.get("feature", "risk"))
        return (
            f"risk:{feature}",
            str(risk_reason.get("zh", feature)),
            str(risk_reason.get("en", feature)),
        )
    signals = {s.name: s for s in preset.depth_signals}
    for name in transition.signals:
        if name in signals:
            return f"signal:{name}", signals[name].zh, signals[name].en
    return _inactive_bucket(days_inactive)


# how long away, in the buckets a campaign is planned by (days: from, to inclusive)
INACTIVE_BUCKETS = ((0, 6), (7, 14), (15, 29), (30, 59), (60, 89))


def _inactive_bucket(days: int | None) -> tuple[str, str, str]:
    for low, high in INACTIVE_BUCKETS:
        if days is not None and low <= days <= high:
            return f"inactive:{low}-{high}", f"{low}–{high} 天未访问", f"inactive {low}–{high} days"
    return "inactive:90+", "90 天以上未访问", "inactive 90 days or more"


def choose_offer(
    rules: WinbackRules, label: str, orders: int, days_inactive: int | None, value: int
) -> Offer | None:
    """The first offer of the playbook whose every condition the user meets."""
    for offer in rules.offers:
        if label not in offer.labels or orders < offer.min_orders:
            continue
        if offer.max_orders is not None and orders > offer.max_orders:
            continue
        if (days_inactive or 0) < offer.min_inactive_days or value < offer.min_value:
            continue
        return offer
    return None


def winback_list(
    store: EventStore, engine: sa.Engine, app: App, day: date | None, limit: int
) -> list[WinbackEntry]:
    """The win-back list of `app` on `day` (default: the latest day with data), labelling that
    day first if it is not in the history; at most `limit` entries, by reason group (largest
    first), then value, amount and person."""
    as_of = day or data_day(store, app)
    plan = plan_labels(store, engine, app, as_of, as_of, relabel=False)
    run_labels(store, engine, app, plan)
    force = playbook_in_force(engine, app.app_id)
    rules = force.playbook.winback
    on_list = labels_on(engine, app.app_id, as_of, tuple(rules.labels))
    rfm = person_rfm(store, app.app_id, as_of, rules.rfm_days)
    scores = rfm_scores(rfm, as_of)
    risks = _risk_reasons(engine, app.app_id)
    entries = []
    for t in on_list:
        activity = rfm.get(t.person_id)
        r, f, m = scores.get(t.person_id, (1, 1, 1))
        last = activity.last_active if activity else None
        inactive = (as_of - last).days if last else None
        risk, reason = risks.get(t.person_id, (None, None))
        key, zh, en = main_reason(t, reason, force.playbook.churn.preset, inactive)
        orders = activity.orders if activity else 0
        offer = choose_offer(rules, t.label, orders, inactive, r + f + m)
        entries.append(
            WinbackEntry(
                t.person_id,
                t.label,
                t.day,
                last,
                inactive,
                activity.active_days if activity else 0,
                orders,
                activity.amount if activity else Decimal(0),
                r,
                f,
                m,
                r + f + m,
                risk,
                key,
                zh,
                en,
                offer.name if offer else None,
                offer.zh if offer else None,
                offer.en if offer else None,
            )
        )
    sizes: dict[str, int] = {}
    for e in entries:
        sizes[e.reason] = sizes.get(e.reason, 0) + 1
    entries.sort(key=lambda e: (-sizes[e.reason], e.reason, -e.value, -e.amount, e.person_id))
    return entries[:limit]


def winback_csv(entries: list[WinbackEntry]) -> str:
    """The list as CSV (UTF-8 with a header row), ready for a spreadsheet or a campaign."""
    out = io.StringIO()
    fields = list(WinbackEntry.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for e in entries:
        writer.writerow(e.as_json())
    return out.getvalue()


__all__ = ["LifecycleError", "WinbackEntry", "winback_csv", "winback_list"]
