"""Ingest: validate a batch for one app and store its good events exactly once."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from liucun.events.batch import Rejected, validate_events
from liucun.state.apps import App
from liucun.warehouse.writer import GroupCommitWriter


class PayloadError(ValueError):
    """The request body as a whole is unusable; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class IngestResult:
    received: int
    accepted: int
    new: int
    rejected: list[Rejected] = field(default_factory=list)

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


async def ingest(
    raw: Sequence[Any],
    app: App,
    writer: GroupCommitWriter,
    sent_at: datetime | None = None,
    received_at: datetime | None = None,
) -> IngestResult:
    """Validate `raw` events of `app` and store the good ones; answer after they are durable."""
    now = received_at or datetime.now(UTC)
    batch = validate_events(raw, app.app_id, now, sent_at)
    new = await writer.write(batch.table, {app.app_id: app.timezone})
    return IngestResult(len(raw), batch.accepted, new, batch.rejected)
