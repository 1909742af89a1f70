"""Reading events from files: JSON lines, CSV, Parquet, or a PostHog export.

Each reader yields chunks of raw event dicts with the line (or row) number of the first, so
that rejected rows are reported where the user can find them. Rows without an `event_id` get
one derived from their content, so importing the same file twice stores each event once.
"""

from __future__ import annotations

import contextlib
import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from liucun.events import posthog
from liucun.events.model import EVENT_FIELDS

FORMATS = ("jsonl", "csv", "parquet", "posthog")
CHUNK_ROWS = 5_000
_FIELDS = set(EVENT_FIELDS)
# columns an export of ours carries that are derived on the way in, not sent
_DERIVED = {"app_id", "distinct_id", "received_at", "event_hash"}
_NAMESPACE = uuid.UUID("8f3e2d71-3b0a-4f7c-a1d5-6c2e9b4f0a18")


@dataclass
class Chunk:
    first_line: int  # line number (1-based) of rows[0] in the file
    rows: list[Any]
    lines: list[int]  # the line number of each row


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as f:
            head = f.read(4096)
        return "posthog" if b'"distinct_id"' in head and b'"uuid"' in head else "jsonl"
    raise ValueError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")


def with_event_id(row: Any) -> Any:
    """The row with an event_id: its own, or one derived from its content."""
    if isinstance(row, dict) and not row.get("event_id"):
        content = orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str).decode()
        row = {**row, "event_id": str(uuid.uuid5(_NAMESPACE, content))}
    return row


def _native_row(row: Any) -> Any:
    if isinstance(row, dict):
        row = {k: v for k, v in row.items() if k not in _DERIVED}
        if isinstance(row.get("properties"), str):
            # if it is not JSON, validation reports that properties is not an object
            with contextlib.suppress(orjson.JSONDecodeError):
                row["properties"] = orjson.loads(row["properties"])
    return with_event_id(row)


def _chunks(rows: Iterator[tuple[int, Any]]) -> Iterator[Chunk]:
    buf: list[Any] = []
    lines: list[int] = []
    for line, row in rows:
        buf.append(row)
        lines.append(line)
        if len(buf) >= CHUNK_ROWS:
            yield Chunk(lines[0], buf, lines)
            buf, lines = [], []
    if buf:
        yield Chunk(lines[0], buf, lines)


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; Unreadable where it is not JSON."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, Unreadable(f"line is not valid JSON: {exc}")


class Unreadable(str):
    """A row that could not be read; validation rejects it with this text."""


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        for row in reader:
            event: dict[str, Any] = {}
            extra: dict[str, Any] = {}
            for key, value in row.items():
                if key is None or value in ("", None):
                    continue
                if key in _FIELDS or key in _DERIVED:
                    event[key] = value
                else:
                    extra[key] = value
            if extra:
                props = event.get("properties")
                props = orjson.loads(props) if isinstance(props, str) and props else {}
                event["properties"] = {**extra, **props}
            yield reader.line_num, event


def parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(row number, row as a dict) of a Parquet file, read in chunks."""
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def read_chunks(path: Path, fmt: str, received_at: datetime) -> Iterator[Chunk]:
    """Chunks of native raw events from `path` in format `fmt`."""
    if fmt == "jsonl":
        rows = ((n, _native_row(r)) for n, r in json_lines(path))
    elif fmt == "csv":
        rows = ((n, _native_row(r)) for n, r in _csv_rows(path))
    elif fmt == "parquet":
        rows = ((n, _native_row(r)) for n, r in parquet_rows(path))
    elif fmt == "posthog":
        rows = (
            (n, with_event_id(posthog.to_native(r, received_at))) for n, r in _posthog_rows(path)
        )
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    yield from _chunks(rows)


def _posthog_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as f:
        head = f.read(1).strip()
    if head == b"[":  # a JSON array export
        yield from enumerate(orjson.loads(path.read_bytes()), start=1)
    else:
        yield from json_lines(path)
