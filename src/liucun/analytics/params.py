"""What a metric is asked for: the date range, the activity event, periods and options.

One validated model serves the CLI (`liucun metrics KIND ...`) and the admin API
(`/admin/v1/apps/{app}/metrics/{kind}`), so both accept and refuse the same things.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Activity is a visit (`app_open`) unless the caller names another event; `any` is any event.
VISIT = "visit"
ANY = "any"
MAX_INTERVALS = 400
MAX_RANGE_DAYS = 3 * 366
DEFAULT_RANGE_DAYS = 30


class AnalyticsError(ValueError):
    """A metric cannot be computed as asked; the message says what to change."""


STEP_PATTERN = re.compile(
    r"^(?P<event>[^\[\]=,]+?)\s*"
    r"(?:\[(?P<key>platform|scene|page|referrer_page|properties\.[A-Za-z0-9_$-]{1,64})"
    r"=(?P<value>[^\]]*)\])?$"
)


@dataclass(frozen=True)
class StepSpec:
    """A funnel step: an event name, optionally narrowed by one field, e.g.
    `page_view[page=pages/order/pay]` or `share[properties.channel=moments]`."""

    event: str
    key: str | None = None
    value: str | None = None


def parse_step(spec: str) -> StepSpec:
    """The step written as `event` or `event[field=value]`; ValueError if it is neither."""
    m = STEP_PATTERN.match(spec.strip())
    if m is None:
        raise ValueError(
            f"step {spec!r}: write an event name, or event[field=value] with field one of "
            "platform, scene, page, referrer_page, properties.KEY"
        )
    return StepSpec(m["event"].strip(), m["key"], m["value"])


class MetricKind(StrEnum):
    active = "active"
    mau_report = "mau-report"
    retention = "retention"
    day_retention = "day-retention"
    lifecycle = "lifecycle"
    stickiness = "stickiness"
    funnel = "funnel"
    exits = "exits"
    paths = "paths"
    features = "features"
    dwell = "dwell"
    heatmap = "heatmap"
    performance = "performance"


class FunnelOrder(StrEnum):
    ordered = "ordered"  # each step after the previous, other events between allowed
    strict = "strict"  # each step the person's very next event after the previous step
    any = "any"  # every step within the window, in any order


MAX_FUNNEL_STEPS = 10
STEPS_PATTERN = r"^\s*[^,\s][^,]*(,\s*[^,\s][^,]*){1,9}$"
WINDOW_PATTERN = r"^[0-9]{1,9}[smhd]$"
# a profile attribute's name goes to the state store as a bound value, never into SQL text:
# any name of 1–64 characters without spaces or commas
BREAKDOWN_PATTERN = (
    r"^(platform|scene|page|referrer_page|properties\.[A-Za-z0-9_$-]{1,64}|profile\.[^\s,]{1,64})$"
)
FUNNEL_NAME_PATTERN = r"^[\w.\-](?:[\w.\- ]{0,98}[\w.\-])?$"
MAX_GRID = 200
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_SECONDS = 366 * 86400


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class WeekStart(StrEnum):
    monday = "monday"
    sunday = "sunday"  # PostHog's default


class RetentionType(StrEnum):
    first_time = "first_time"
    recurring = "recurring"


EventName = Annotated[str, Field(min_length=1, max_length=200)]


class MetricParams(BaseModel):
    """The options of every metric; each metric reads the ones it needs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    date_from: date | None = Field(
        None, alias="from", description="First app-local date (default: 30 days to `to`)."
    )
    date_to: date | None = Field(
        None, alias="to", description="Last app-local date (default: the latest day with data)."
    )
    event: EventName = Field(
        VISIT, description="The event that counts as activity: `visit`, `any` or an event name."
    )
    week_start: WeekStart = WeekStart.monday
    period: Period = Period.day
    intervals: int = Field(11, ge=1, le=MAX_INTERVALS, description="Retention intervals.")
    type: RetentionType = RetentionType.first_time
    cumulative: bool = False
    start_event: EventName | None = Field(None, description="Retention start (default: event).")
    return_event: EventName | None = Field(None, description="Retention return (default: event).")
    min_events: int = Field(1, ge=1, le=1_000_000, description="Events that make a period count.")
    steps: str | None = Field(
        None, max_length=2000, description="Funnel steps: event names, comma-separated."
    )
    window: str = Field(
        "14d", pattern=WINDOW_PATTERN, description="Funnel conversion window: 30m, 1d."
    )
    order: FunnelOrder = FunnelOrder.ordered
    breakdown: str | None = Field(
        None,
        pattern=BREAKDOWN_PATTERN,
        description=(
            "Funnel or retention breakdown: platform, scene, page, referrer_page or "
            "properties.KEY (the value on the first step's or the start event), or "
            "profile.NAME (the person's profile attribute)."
        ),
    )

    saved: str | None = Field(
        None, min_length=1, max_length=100, description="Funnel: a saved funnel's name."
    )
    page: str | None = Field(
        None, min_length=1, max_length=512, description="Paths: links of this page; heatmap."
    )
    limit: int = Field(100, ge=1, le=10_000, description="Most rows (pages, links, features).")
    grid: str = Field(
        "10x20", pattern=r"^[0-9]{1,3}x[0-9]{1,3}$", description="Heatmap columns x rows."
    )

    @property
    def grid_size(self) -> tuple[int, int]:
        columns, rows = self.grid.split("x")
        return int(columns), int(rows)

    @property
    def step_list(self) -> list[str]:
        return [s.strip() for s in (self.steps or "").split(",")]

    @property
    def window_seconds(self) -> int:
        return int(self.window[:-1]) * WINDOW_UNITS[self.window[-1]]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"`from` {self.date_from} is after `to` {self.date_to}")
        if self.window_seconds <= 0:
            raise ValueError(f"window {self.window} must be longer than 0")
        if self.window_seconds > MAX_WINDOW_SECONDS:
            raise ValueError(f"window {self.window} is longer than 366 days")
        if not all(1 <= n <= MAX_GRID for n in self.grid_size):
            raise ValueError(f"grid {self.grid}: columns and rows from 1 to {MAX_GRID}")
        if self.steps is not None:
            steps = self.step_list
            if len(steps) < 2 or len(steps) > MAX_FUNNEL_STEPS or not all(steps):
                raise ValueError(
                    f"steps: give 2 to {MAX_FUNNEL_STEPS} event names, comma-separated, "
                    f"got {self.steps!r}"
                )
            for step in steps:
                parse_step(step)
        return self


def parse_params(values: Mapping[str, object]) -> MetricParams:
    """`values` as MetricParams; an AnalyticsError naming each bad option otherwise."""
    try:
        return MetricParams.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        raise AnalyticsError("; ".join(problems)) from None
