"""Completing a table of wire columns (from the simulator) into stored-event columns, column-wise.

The simulator's tables already hold valid events; this adds what ingest derives (app id, dedup
hash, distinct id, receive time) without a Python loop per event.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from liucun.warehouse.dedup import event_hashes
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.schema import STORED_EVENT_ARROW_SCHEMA, TS_TYPE

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def uuid_bytes(ids: pa.Array) -> bytes:
    """The 16-byte forms of canonical UUID strings, concatenated (ValueError on a bad one)."""
    hex_text = pc.replace_substring(ids, "-", "").cast(pa.string()).to_numpy(zero_copy_only=False)
    digits = np.asarray(hex_text, dtype="S32").view(np.uint8).reshape(-1, 32)
    nibbles = _HEX[digits]
    if (nibbles == 255).any() or digits.shape[0] != len(ids):
        raise ValueError("event_id column holds a value that is not a UUID")
    return (nibbles[:, 0::2] * 16 + nibbles[:, 1::2]).astype(np.uint8).tobytes()


def complete_table(wire: pa.Table, app_id: str, received_at: datetime) -> pa.Table:
    """`wire` (the event columns a client sends) as a table in the store's event schema."""
    n = wire.num_rows
    distinct_id = pc.coalesce(wire.column("user_id"), wire.column("anonymous_id"))
    derived = {
        "app_id": pa.array([app_id] * n, pa.string()),
        "event_hash": pa.array(event_hashes(app_id, uuid_bytes(wire.column("event_id")))),
        "distinct_id": distinct_id,
        "distinct_key": id_keys(distinct_id),
        "received_at": pa.array([received_at] * n, TS_TYPE),
    }
    columns = [
        derived[f.name] if f.name in derived else wire.column(f.name).cast(f.type)
        for f in STORED_EVENT_ARROW_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=STORED_EVENT_ARROW_SCHEMA)
