"""D1 / D7 / D30 retention: the seeds' three retention figures, from the daily cohort matrix.

Definition (docs/metrics.md#day-retention): for day k, the daily first-time cohorts of the
range that are at least k days old on its last day (their list reaches interval k) are pooled:
`rate = Σ counts[k] ÷ Σ size` over those cohorts, so a large cohort weighs more than a small
one, as if all their members were one group. A cohort too young for day k is left out of day
k's figure (its day-k return is not known yet), so D30 rests on fewer cohorts than D1.
"""

from __future__ import annotations

from dataclasses import dataclass

from liucun.analytics.activity_source import Scope
from liucun.analytics.params import Period, RetentionType
from liucun.analytics.retention import Cohort, RetentionQuery, retention
from liucun.warehouse.store import EventStore

SEED_DAYS = (1, 7, 30)


@dataclass(frozen=True)
class DayRetention:
    """Day-`day` retention pooled over `cohorts` daily cohorts of `cohort_users` persons, of
    whom `retained` came back on day `day`; `rate` is None when no cohort is old enough."""

    day: int
    rate: float | None
    retained: int
    cohort_users: int
    cohorts: int


def pooled(cohorts: list[Cohort], day: int) -> DayRetention:
    """Day-`day` retention of the cohorts whose list reaches interval `day`."""
    known = [c for c in cohorts if len(c.counts) > day and c.size > 0]
    size = sum(c.size for c in known)
    back = sum(c.counts[day] for c in known)
    return DayRetention(day, back / size if size else None, back, size, len(known))


def day_retention(
    store: EventStore, scope: Scope, event: str, days: tuple[int, ...] = SEED_DAYS
) -> list[DayRetention]:
    """D-k retention for each k of `days` over the daily first-time cohorts of `scope`."""
    q = RetentionQuery(
        period=Period.day,
        intervals=max(days) + 1,
        type=RetentionType.first_time,
        start_event=event,
        return_event=event,
    )
    cohorts = retention(store, scope, q)
    return [pooled(cohorts, k) for k in days]
