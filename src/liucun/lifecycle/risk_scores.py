"""Churn-risk scores: the latest model applied to every person in scope, stored with reasons.

`churn_scores` holds one row per person: the current risk, the risk it replaced
(`previous_risk`, so that "risk crossed a threshold" is one row's business) and the reasons
(`risk.reasons`) as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.analytics.activity_source import first_day, latest_day
from liucun.lifecycle.features import person_features
from liucun.lifecycle.risk import Reason, RiskError, feature_matrix, latest_model, reasons
from liucun.playbook.risk import RiskSettings
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.state.tables import churn_scores
from liucun.warehouse.store import EventStore

# rows written per statement
BATCH_ROWS = 5_000


@dataclass(frozen=True)
class Scored:
    """One scoring run: persons scored at `as_of` with `model_id`, how many at high risk."""

    app_id: str
    as_of: date
    model_id: str
    persons: int
    high_risk: int
    mean_risk: float


def _reason_json(items: list[Reason]) -> str:
    return orjson.dumps([asdict(r) for r in items]).decode()


def score(
    store: EventStore,
    state: sa.Engine,
    app: App,
    settings: RiskSettings,
    as_of: date | None = None,
) -> Scored:
    """Score every person in scope at `as_of` (default: the latest day with data) with the
    app's latest model and store the scores with their reasons in `churn_scores`.

    A person's previous score moves to `previous_risk`; persons no longer in scope (away 90
    days or more) lose their row, so the table holds the current scores only.
    """
    stored = latest_model(state, app.app_id)
    if stored is None:
        raise RiskError(f"app {app.name!r} has no churn-risk model: run `liucun churn train` first")
    last = latest_day(store, app.app_id)
    if last is None:
        raise RiskError("the app has no events yet: ingest events, then score")
    as_of = as_of or last
    first = first_day(store, app.app_id)
    if as_of > last or (first is not None and as_of < first):
        raise RiskError(f"as-of day {as_of} is outside the days with data ({first} … {last})")
    rules = playbook_in_force(state, app.app_id).playbook.churn
    features = person_features(store, app.app_id, app.timezone, as_of, rules)
    x = feature_matrix(features, stored.model.features)
    risk = stored.model.risk_of(x)
    why = reasons(stored.model, x, settings.reasons)
    now = datetime.now(UTC)
    rows = [
        {
            "app_id": app.app_id,
            "person_id": person,
            "as_of": as_of,
            "model_id": stored.model_id,
            "risk": float(r),
            "previous_risk": None,
            "reasons": _reason_json(items),
            "scored_at": now,
        }
        for person, r, items in zip(
            features.column("person_id").to_pylist(), risk, why, strict=True
        )
    ]
    _replace_scores(state, app.app_id, rows, now)
    high = int((risk >= settings.high_risk).sum())
    mean = float(risk.mean()) if len(risk) else 0.0
    return Scored(app.app_id, as_of, stored.model_id, len(rows), high, mean)


def _upsert(conn: sa.Connection) -> Any:
    """INSERT … ON CONFLICT (app_id, person_id) DO UPDATE that moves the replaced risk to
    previous_risk, in the state store's dialect (both spell it the same way)."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(churn_scores)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[churn_scores.c.app_id, churn_scores.c.person_id],
        set_={
            "as_of": new.as_of,
            "model_id": new.model_id,
            "risk": new.risk,
            # in DO UPDATE the table's own column is the row being replaced
            "previous_risk": churn_scores.c.risk,
            "reasons": new.reasons,
            "scored_at": new.scored_at,
        },
    )


def _replace_scores(
    state: sa.Engine, app_id: str, rows: list[dict[str, Any]], scored_at: datetime
) -> None:
    t = churn_scores.c
    with state.begin() as conn:
        stmt = _upsert(conn)
        for start in range(0, len(rows), BATCH_ROWS):
            conn.execute(stmt, rows[start : start + BATCH_ROWS])
        conn.execute(churn_scores.delete().where(t.app_id == app_id, t.scored_at != scored_at))


@dataclass(frozen=True)
class PersonRisk:
    """A stored score: the risk, the one it replaced, and the reasons (dicts of `Reason`)."""

    person_id: str
    as_of: date
    model_id: str
    risk: float
    previous_risk: float | None
    high_risk: bool
    reasons: list[dict[str, Any]]
    scored_at: datetime


def _person_risk(row: Any, high_risk: float) -> PersonRisk:
    scored_at = row.scored_at
    if scored_at.tzinfo is None:  # SQLite keeps no zone: the value was written in UTC
        scored_at = scored_at.replace(tzinfo=UTC)
    return PersonRisk(
        row.person_id,
        row.as_of,
        row.model_id,
        row.risk,
        row.previous_risk,
        row.risk >= high_risk,
        orjson.loads(row.reasons),
        scored_at,
    )


def top_risks(
    state: sa.Engine, app_id: str, settings: RiskSettings, limit: int = 50
) -> list[PersonRisk]:
    """The app's highest stored risks, highest first (ties by person id)."""
    t = churn_scores.c
    query = (
        sa.select(churn_scores)
        .where(t.app_id == app_id)
        .order_by(t.risk.desc(), t.person_id)
        .limit(limit)
    )
    with state.connect() as conn:
        return [_person_risk(r, settings.high_risk) for r in conn.execute(query)]


def person_risk(
    state: sa.Engine, app_id: str, person_id: str, settings: RiskSettings
) -> PersonRisk | None:
    """The stored score of one person (by text id), None if not scored."""
    t = churn_scores.c
    query = sa.select(churn_scores).where(t.app_id == app_id, t.person_id == person_id)
    with state.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _person_risk(row, settings.high_risk)


def person_risk_json(p: PersonRisk) -> dict[str, Any]:
    """A stored score as plain data (the CLI's `--json` and the API)."""
    return {
        "person_id": p.person_id,
        "as_of": p.as_of.isoformat(),
        "risk": p.risk,
        "previous_risk": p.previous_risk,
        "high_risk": p.high_risk,
        "reasons": p.reasons,
        "model_id": p.model_id,
        "scored_at": p.scored_at.isoformat(),
    }


def scored_json(s: Scored) -> dict[str, Any]:
    """A scoring run as plain data."""
    return {**asdict(s), "as_of": s.as_of.isoformat()}
