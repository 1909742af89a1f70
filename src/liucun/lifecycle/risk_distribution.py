"""How the stored churn-risk scores spread: persons per band of risk, for the dashboard.

Definition: the app's latest score of each person (`churn_scores`) is put in one of `bins`
equal bands of [0, 1]: band i holds `i/bins ≤ risk < (i+1)/bins`, the last band also holds a
risk of exactly 1. `high_risk` counts the persons at or above the playbook's
`risk.high_risk`, as the scores endpoint flags them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from liucun.state.tables import churn_scores

MAX_BINS = 100


def risk_distribution(state: sa.Engine, app_id: str, bins: int, high_risk: float) -> dict[str, Any]:
    """Persons per risk band (module docstring), counted in one pass over the scores."""
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins {bins}: from 1 to {MAX_BINS}")
    t = churn_scores.c
    edges = [i / bins for i in range(bins + 1)]

    def band(i: int) -> Any:
        upper = t.risk <= edges[i + 1] if i == bins - 1 else t.risk < edges[i + 1]
        return sa.func.coalesce(sa.func.sum(sa.case((sa.and_(t.risk >= edges[i], upper), 1))), 0)

    columns = [band(i) for i in range(bins)]
    query = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((t.risk >= high_risk, 1))), 0),
        sa.func.max(t.as_of),
        *columns,
    ).where(t.app_id == app_id)
    with state.connect() as conn:
        row = conn.execute(query).one()
    as_of: date | None = row[2]
    return {
        "persons": int(row[0]),
        "high_risk": int(row[1]),
        "high_risk_threshold": high_risk,
        "as_of": as_of.isoformat() if as_of else None,
        "bins": [
            {"low": edges[i], "high": edges[i + 1], "persons": int(row[3 + i])} for i in range(bins)
        ],
    }
