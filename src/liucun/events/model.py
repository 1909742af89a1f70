"""The event as a client sends it: field types, limits and per-event rules.

Limits are documented in `docs/events.md`; a value over a limit is rejected, never truncated,
so what is stored is what was sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Required

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

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


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Page = Annotated[str, Field(min_length=1, max_length=MAX_PAGE_CHARS)]
# WeChat hands scenes to the app as numbers (1001, 1089); they are stored as text.
Scene = int | Annotated[str, Field(max_length=MAX_SCENE_CHARS)]
Amount = Annotated[Decimal, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, decimal_places=2)]


class EventIn(TypedDict, total=False):
    """One event in liucun's native wire format (`POST /v1/batch`).

    A TypedDict rather than a model: pydantic-core checks every field in Rust and hands back
    plain dicts, which Arrow turns into columns without a Python loop per field. The rules that
    span fields (a user or a device id; the standard events' required fields) are checked
    column-wise in `events.batch`.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    event_id: Required[
        Annotated[
            str,
            Field(
                pattern=UUID_PATTERN,
                description="Client-made UUID (8-4-4-4-12 hex), the dedup key: resend it on retry.",
            ),
        ]
    ]
    event: Required[Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_CHARS)]]
    user_id: Id | None
    anonymous_id: Id | None
    session_id: Id | None
    ts: Annotated[datetime | None, Field(description="When it happened; receive time if absent.")]
    sent_at: Annotated[
        datetime | None,
        Field(description="Client clock when the batch was sent; corrects a skewed clock."),
    ]
    platform: Platform | None
    page: Page | None
    referrer_page: Page | None
    scene: Scene | None
    duration_ms: Annotated[int, Field(ge=0, le=MAX_DURATION_MS)] | None
    load_ms: Annotated[int, Field(ge=0, le=MAX_LOAD_MS)] | None
    x: Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)] | None
    y: Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)] | None
    amount: Amount | None
    # Its size limit is checked where it is serialised once, in `events.batch`.
    properties: dict[str, Any]


EVENT_FIELDS: tuple[str, ...] = tuple(EventIn.__annotations__)


def as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC, as in PostHog's capture API."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
