"""The event as a client sends it: field types, limits and per-event rules.

Limits are documented in `docs/events.md`; a value over a limit is rejected, never truncated,
so what is stored is what was sent.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from liucun.events.standard import STANDARD_EVENTS

MAX_ID_CHARS = 200
MAX_EVENT_NAME_CHARS = 200
MAX_PAGE_CHARS = 1000
MAX_SCENE_CHARS = 100
MAX_PROPERTIES_BYTES = 32 * 1024
MAX_DURATION_MS = 24 * 3600 * 1000
MAX_LOAD_MS = 10 * 60 * 1000
MAX_COORDINATE = 100_000.0
# 16 digits before the point, 2 after: the decimal(18, 2) of the store.
MAX_AMOUNT = Decimal("9999999999999999.99")
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
# PostHog's figure: an event more than 23 hours ahead of the server is not plausible.
FUTURE_TOLERANCE = timedelta(hours=23)

Platform = Literal["wechat", "alipay", "douyin", "web", "ios", "android"]


def _scene_as_text(value: Any) -> Any:
    # WeChat hands scenes to the app as numbers (1001, 1089); we keep them as text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Page = Annotated[str, Field(min_length=1, max_length=MAX_PAGE_CHARS)]
Scene = Annotated[str, BeforeValidator(_scene_as_text), Field(max_length=MAX_SCENE_CHARS)]


class EventIn(BaseModel):
    """One event in liucun's native wire format (`POST /v1/batch`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(description="Client-made UUID, the dedup key: send the same on retry.")
    event: str = Field(min_length=1, max_length=MAX_EVENT_NAME_CHARS)
    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Id | None = None
    ts: datetime | None = Field(None, description="When it happened; receive time if absent.")
    sent_at: datetime | None = Field(
        None, description="Client clock when the batch was sent; corrects a skewed clock."
    )
    platform: Platform | None = None
    page: Page | None = None
    referrer_page: Page | None = None
    scene: Scene | None = None
    duration_ms: int | None = Field(None, ge=0, le=MAX_DURATION_MS)
    load_ms: int | None = Field(None, ge=0, le=MAX_LOAD_MS)
    x: float | None = Field(None, ge=-MAX_COORDINATE, le=MAX_COORDINATE)
    y: float | None = Field(None, ge=-MAX_COORDINATE, le=MAX_COORDINATE)
    amount: Decimal | None = Field(None, ge=-MAX_AMOUNT, le=MAX_AMOUNT, decimal_places=2)
    # Its size limit is checked where it is serialised once, in `events.batch`.
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: Any) -> Any:
        # JSON numbers arrive as floats; their shortest repr is the decimal the client wrote.
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("amount must be a finite number")
            return Decimal(repr(value))
        return value

    @model_validator(mode="after")
    def _standard_fields(self) -> EventIn:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("an event needs a user_id or an anonymous_id (or both)")
        spec = STANDARD_EVENTS.get(self.event)
        if spec is None:
            return self
        missing = [f for f in spec.required if getattr(self, f) is None]
        missing += [f"properties.{p}" for p in spec.required_properties if p not in self.properties]
        if missing:
            raise ValueError(f"event {self.event!r} requires {', '.join(missing)}")
        return self


def as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC, as in PostHog's capture API."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
