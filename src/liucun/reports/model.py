"""What a monthly evaluation holds: KPIs, changes, pages, alerts, campaigns, advice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from liucun.lifecycle.alert_store import StoredAlert, alert_json
from liucun.reports.changes import GroupChange, PageChange


class ReportError(ValueError):
    """A report that cannot be made (a month with no data, a month in the future)."""


@dataclass(frozen=True)
class Kpi:
    """One figure of the month beside the month before and its target, if it has one."""

    key: str
    value: float | None
    previous: float | None
    target: str | None  # e.g. "≥ 2", "15–20"
    status: str  # ok, below, above, no data, info

    @property
    def change(self) -> float | None:
        if self.value is None or not self.previous:
            return None
        return (self.value - self.previous) / self.previous


@dataclass(frozen=True)
class Advice:
    """A recommended playbook adjustment: which rule fired, on what figures, what to do."""

    rule: str
    figures: dict[str, Any]
    zh: str
    en: str


@dataclass
class MonthlyReport:
    app_id: str
    app_name: str
    month: date
    last_day: date
    complete: bool
    kpis: list[Kpi]
    daily_uv: list[tuple[date, int]]
    previous_daily_uv: list[tuple[date, int]]
    changes: list[GroupChange]
    pages: list[PageChange]
    alerts: list[StoredAlert]
    campaigns: list[dict[str, Any]]
    advice: list[Advice] = field(default_factory=list)

    def kpi(self, key: str) -> Kpi:
        return next(k for k in self.kpis if k.key == key)

    def as_json(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "app": self.app_name,
            "month": self.month.strftime("%Y-%m"),
            "last_day": self.last_day.isoformat(),
            "complete": self.complete,
            "kpis": [{**k.__dict__, "change": k.change} for k in self.kpis],
            "daily_uv": [[d.isoformat(), n] for d, n in self.daily_uv],
            "previous_daily_uv": [[d.isoformat(), n] for d, n in self.previous_daily_uv],
            "changes": [c.__dict__ for c in self.changes],
            "pages": [p.__dict__ for p in self.pages],
            "alerts": [alert_json(a) for a in self.alerts],
            "campaigns": self.campaigns,
            "advice": [a.__dict__ for a in self.advice],
        }
