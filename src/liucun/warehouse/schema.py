"""The columns of the events table, in one place: Arrow types for batches, SQL types per dialect.

Every batch that reaches an event store is an Arrow table with exactly these columns in this
order; the dialects map each logical type to their own SQL type.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# Money is exact: 18 digits with 2 after the point (yuan and fen).
AMOUNT_TYPE = pa.decimal128(18, 2)
TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    logical: str  # one of: string, uuid, timestamp, int, float, decimal, json
    nullable: bool = True


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("app_id", pa.string(), "string", nullable=False),
    Column("event_id", pa.string(), "uuid", nullable=False),
    # 64-bit hash of (app_id, event_id): the dedup index key, kept in the table so the index
    # can be rebuilt and a candidate duplicate verified by scanning 8 bytes a row.
    Column("event_hash", pa.int64(), "int", nullable=False),
    Column("user_id", pa.string(), "string"),
    Column("anonymous_id", pa.string(), "string"),
    # the id the event was sent under: user_id when known, else anonymous_id
    Column("distinct_id", pa.string(), "string", nullable=False),
    Column("session_id", pa.string(), "string"),
    Column("event", pa.string(), "string", nullable=False),
    Column("ts", TS_TYPE, "timestamp", nullable=False),
    Column("received_at", TS_TYPE, "timestamp", nullable=False),
    Column("platform", pa.string(), "string"),
    Column("page", pa.string(), "string"),
    Column("referrer_page", pa.string(), "string"),
    Column("scene", pa.string(), "string"),
    Column("duration_ms", pa.int64(), "int"),
    Column("load_ms", pa.int64(), "int"),
    Column("x", pa.float64(), "float"),
    Column("y", pa.float64(), "float"),
    Column("amount", AMOUNT_TYPE, "decimal"),
    Column("properties", pa.string(), "json"),
)

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS)
# what every store's export gives: the event columns but the dedup hash (derived from the id)
EXPORT_COLUMN_NAMES: tuple[str, ...] = tuple(c for c in EVENT_COLUMN_NAMES if c != "event_hash")

EVENT_ARROW_SCHEMA = pa.schema(
    [pa.field(c.name, c.arrow, nullable=c.nullable) for c in EVENT_COLUMNS]
)

# The person key the store derives from `distinct_id` (`person_keys`): stored beside the event
# columns, never sent or exported.
DISTINCT_KEY = Column("distinct_key", pa.int64(), "int", nullable=False)
STORED_EVENT_COLUMNS: tuple[Column, ...] = (*EVENT_COLUMNS, DISTINCT_KEY)
STORED_EVENT_ARROW_SCHEMA = EVENT_ARROW_SCHEMA.append(
    pa.field(DISTINCT_KEY.name, DISTINCT_KEY.arrow, nullable=False)
)
