"""The loyalty jobs the daily run does (and `liucun loyalty run-jobs` on demand): write off
expired points, review levels, close group buys and help-unlocks past their deadline, and
count the coupons due for an expiry reminder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.programme import Programme


def run_loyalty_jobs(engine: sa.Engine, prog: Programme, now: datetime) -> dict[str, Any]:
    """Run each job at `now`; each is safe to run again and beside the servers."""
    from liucun.loyalty.coupons import expiring_coupons
    from liucun.loyalty.levels import review_levels
    from liucun.loyalty.points import expire_points
    from liucun.loyalty.social import close_expired_goals

    return {
        "points_expired": expire_points(engine, prog, now),
        "level_changes": len(review_levels(engine, prog, now)),
        "goals_failed": len(close_expired_goals(engine, prog, now)),
        "coupons_expiring": len(expiring_coupons(engine, prog, now)),
    }
