"""Ingest: parse and check a request body, then store its good events for one app, once each.

Parsing and checking (`parse_native`, `parse_posthog`) need no app and no store, so the server
runs them in worker processes, beside the process that owns the event store; storing
(`store_checked`) happens in that process, after the write key has named the app.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
from pydantic import TypeAdapter, ValidationError

from liucun.events import posthog
from liucun.events.batch import CheckedBatch, Rejected, check_events, for_app
from liucun.state.apps import App
from liucun.warehouse.writer import GroupCommitWriter

_DATETIME = TypeAdapter(datetime)


class PayloadError(ValueError):
    """The request body as a whole is unusable; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:  # keeps `status` across a process boundary
        return (PayloadError, (str(self), self.status))


@dataclass(frozen=True)
class Limits:
    max_events: int
    max_body_bytes: int


@dataclass
class ParsedRequest:
    checked: CheckedBatch
    body_key: str | None  # a write key sent inside the body, if any


@dataclass
class IngestResult:
    received: int
    accepted: int
    new: int
    rejected: list[Rejected] = field(default_factory=list)
    # the accepted events as stored (retries included), for the loyalty reactions
    events: Any = None

    @property
    def duplicates(self) -> int:
        return self.accepted - self.new


def decompress(body: bytes, limit: int) -> bytes:
    """`body` un-gzipped if it is gzip, refusing to expand past `limit` bytes (gzip bombs)."""
    if body[:2] != b"\x1f\x8b":
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PayloadError(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadError(f"body expands to more than {limit} bytes after gzip", status=413)
    return out


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None


def check_batch_size(events: Sequence[Any], limit: int) -> None:
    if len(events) > limit:
        raise PayloadError(
            f"batch has {len(events)} events; the limit is {limit} per request — split it",
            status=413,
        )


def parse_sent_at(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return _DATETIME.validate_python(value)
    except ValidationError:
        raise PayloadError(f"sent_at {value!r} is not a date-time") from None


def _key(value: Any) -> str | None:
    return str(value) if value is not None else None


def parse_native(body: bytes, limits: Limits, received_at: datetime) -> ParsedRequest:
    """Check the body of `POST /v1/batch`: a JSON array of events or `{"batch": [...]}`."""
    payload = parse_json(decompress(body, limits.max_body_bytes))
    if isinstance(payload, list):
        events, sent_at, body_key = payload, None, None
    elif isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        events, sent_at = payload["batch"], parse_sent_at(payload.get("sent_at"))
        body_key = _key(payload.get("api_key"))
    else:
        raise PayloadError('body must be a JSON array of events or {"batch": [...]}')
    check_batch_size(events, limits.max_events)
    return ParsedRequest(check_events(events, received_at, sent_at), body_key)


def _posthog_payload(body: bytes, content_type: str, limit: int) -> Any:
    """The JSON of a capture request: plain, gzip, or posthog-js's base64 form field `data`."""
    body = decompress(body, limit)
    if "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(body.decode("latin-1"))
        if "data" not in form:
            raise PayloadError("form body has no `data` field")
        try:
            body = base64.b64decode(form["data"][0], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise PayloadError(f"`data` is not base64: {exc}") from None
        body = decompress(body, limit)
    return parse_json(body)


def parse_posthog(
    body: bytes, content_type: str, limits: Limits, received_at: datetime
) -> ParsedRequest:
    """Check the body of a PostHog capture request (`/capture/`, `/batch/`, `/e/`)."""
    payload = _posthog_payload(body, content_type, limits.max_body_bytes)
    if not isinstance(payload, dict | list):
        raise PayloadError('body must be a PostHog event, a list of events or {"batch": [...]}')
    raw, sent_at = posthog.events_of(payload)
    check_batch_size(raw, limits.max_events)
    native = [posthog.to_native(e, received_at) for e in raw]
    checked = check_events(native, received_at, parse_sent_at(sent_at))
    return ParsedRequest(checked, posthog.api_key_of(payload))


async def store_checked(checked: CheckedBatch, app: App, writer: GroupCommitWriter) -> IngestResult:
    """Store the checked events as `app`'s; answers after they are durable."""
    batch = for_app(checked, app.app_id)
    new = await writer.write(batch.table, {app.app_id: app.timezone})
    return IngestResult(checked.received, batch.accepted, new, batch.rejected, batch.table)


def warm_up() -> None:
    """Run in each worker process at start, so the first request finds everything imported."""
    check_events([], datetime.now().astimezone())
