"""Writing stored events out: JSON lines or Parquet, every event once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def jsonl_lines(table: pa.Table) -> Iterator[bytes]:
    """One JSON line per stored event; `properties` as an object, amounts as exact text."""
    for row in table.to_pylist():
        row["event_id"] = str(row["event_id"])
        row["properties"] = orjson.loads(row["properties"]) if row["properties"] else {}
        clean = {k: v for k, v in row.items() if v is not None}
        yield orjson.dumps(clean, default=_json_default, option=orjson.OPT_UTC_Z) + b"\n"


def write_export(batches: Iterator[pa.Table], path: str, fmt: str) -> int:
    """Write `batches` to `path` as `jsonl` or `parquet`; returns the number of events."""
    count = 0
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer: pq.ParquetWriter | None = None
        for table in batches:
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            count += table.num_rows
        if writer is None:
            from liucun.warehouse.schema import EVENT_ARROW_SCHEMA

            schema = EVENT_ARROW_SCHEMA.remove(EVENT_ARROW_SCHEMA.get_field_index("event_hash"))
            pq.write_table(schema.empty_table(), path)
        else:
            writer.close()
        return count
    with open(path, "wb") as out:
        for table in batches:
            out.writelines(jsonl_lines(table))
            count += table.num_rows
    return count
