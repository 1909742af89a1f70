"""Request and response bodies of the HTTP API, as they appear in its OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from liucun.events.model import EventIn


class NativeBatch(BaseModel):
    """The body of `POST /v1/batch` (a bare JSON array of events is accepted too)."""

    batch: list[EventIn]
    sent_at: datetime | None = Field(None, description="Client clock at send time.")
    api_key: str | None = Field(None, description="The write key, if not sent as a header.")


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the batch, from 0.")
    reason: str


class IngestResponse(BaseModel):
    received: int = Field(description="Events in the request.")
    accepted: int = Field(description="Events stored now or before (retries included).")
    new: int = Field(description="Events stored for the first time by this request.")
    duplicates: int = Field(description="Accepted events that were already stored.")
    rejected: list[RejectedEvent]


class PostHogResponse(IngestResponse):
    status: int = Field(1, description="PostHog's own answer: 1 means accepted.")


class ErrorResponse(BaseModel):
    detail: Any


class AppOut(BaseModel):
    app_id: str
    name: str
    timezone: str
    write_key: str


class AppCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    timezone: str = "Asia/Shanghai"


class AppCreated(AppOut):
    admin_token: str


class EventCount(BaseModel):
    app_id: str
    events: int


class UsersIn(BaseModel):
    users: list[Any] = Field(
        max_length=10_000,
        description="Rows of {user_id, created_at}; each is checked on its own.",
    )


class RejectedRow(BaseModel):
    index: int
    reason: str


class UsersAccepted(BaseModel):
    accepted: int
    rejected: list[RejectedRow]


class Health(BaseModel):
    status: str
    version: str


# 422 too: besides FastAPI's list of field problems, a route may explain in one sentence
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422)
}
