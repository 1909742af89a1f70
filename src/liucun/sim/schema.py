"""Arrow schemas of the simulator's outputs: event chunks and the ground-truth table."""

from __future__ import annotations

import pyarrow as pa

from liucun.warehouse.schema import AMOUNT_TYPE, EVENT_ARROW_SCHEMA

# Columns the warehouse adds on ingest (tenant, dedup hash, resolved id, arrival time); a
# simulated event carries only what a client would send.
INGEST_COLUMNS: frozenset[str] = frozenset({"app_id", "event_hash", "distinct_id", "received_at"})

SIM_EVENT_SCHEMA: pa.Schema = pa.schema(
    [field for field in EVENT_ARROW_SCHEMA if field.name not in INGEST_COLUMNS]
)

GROUND_TRUTH_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("anonymous_id", pa.string(), nullable=False),
        # set only for users who logged in (sent an identify event) within the window
        pa.field("user_id", pa.string()),
        pa.field("user_type", pa.string(), nullable=False),  # a USER_TYPES name, or "bot"
        pa.field("industry", pa.string(), nullable=False),
        pa.field("device_class", pa.string(), nullable=False),
        pa.field("is_bot", pa.bool_(), nullable=False),
        pa.field("first_day", pa.date32(), nullable=False),
        # the first app-local date with no events any more; null if alive at the end
        pa.field("churn_day", pa.date32()),
        # the user's own expected first-screen load (the churn hazard is computed from it)
        pa.field("mean_load_ms", pa.float64(), nullable=False),
        # expected sessions per weekday while alive (0 for one_time users: scheduled visits)
        pa.field("visit_rate", pa.float64(), nullable=False),
        pa.field("uplift", pa.float64(), nullable=False),
        pa.field("orders", pa.int64(), nullable=False),
        pa.field("revenue", AMOUNT_TYPE, nullable=False),
    ]
)
