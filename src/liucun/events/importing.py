"""`liucun import`: a file's events through the same validation and dedup as HTTP ingest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liucun.events.batch import validate_events
from liucun.events.importers import Unreadable, detect_format, read_chunks
from liucun.events.ingest import IngestResult
from liucun.state.apps import App
from liucun.warehouse.store import EventStore

# Sends one chunk of raw events for an app and reports what happened to each.
Sender = Callable[[Sequence[Any]], IngestResult]


@dataclass
class ImportReport:
    path: str
    format: str
    rows: int = 0
    accepted: int = 0
    new: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    @property
    def duplicates(self) -> int:
        return self.accepted - self.new


def store_sender(store: EventStore, app: App) -> Sender:
    """Validate and append straight into an event store this process owns."""

    def send(rows: Sequence[Any]) -> IngestResult:
        now = datetime.now(UTC)
        batch = validate_events(rows, app.app_id, now)
        new = int(store.append(batch.table, {app.app_id: app.timezone}).sum())
        return IngestResult(len(rows), batch.accepted, new, batch.rejected)

    return send


def import_file(
    path: Path,
    send: Sender,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every row of `path`; `progress(rows_done)` is called after each chunk."""
    fmt = fmt or detect_format(path)
    report = ImportReport(str(path), fmt)
    for chunk in read_chunks(path, fmt, datetime.now(UTC)):
        report.rows += len(chunk.rows)
        readable = [i for i, r in enumerate(chunk.rows) if not isinstance(r, Unreadable)]
        report.rejected += [
            (chunk.lines[i], str(r)) for i, r in enumerate(chunk.rows) if isinstance(r, Unreadable)
        ]
        if readable:
            result = send([chunk.rows[i] for i in readable])
            report.accepted += result.accepted
            report.new += result.new
            report.rejected += [(chunk.lines[readable[r.index]], r.reason) for r in result.rejected]
        if progress:
            progress(report.rows)
    report.rejected.sort()
    return report
