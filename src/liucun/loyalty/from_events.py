"""The reactions step of ingest: hand a stored batch's events to the loyalty rules.

It runs after the events are durable and before the request is answered, on every accepted
event (retries included): if it fails the client is told to retry, and the retry finds the
events stored and runs the reactions again, which award nothing twice (each is keyed by the
event id). Events the app's backend sent (authorised with the app's admin token) are
`trusted`; only they can earn by rules marked `server_only` (orders, refunds), because the
write key is public.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from liucun.loyalty.programme import Programme

COLUMNS = ("event_id", "event", "user_id", "anonymous_id", "ts", "amount", "properties")


def loyalty_events(table: pa.Table, names: set[str]) -> list[dict[str, Any]]:
    """The batch's events of identified users named in `names`, as the reactions read them
    (properties parsed, amounts as yuan floats)."""
    wanted = pc.and_(
        pc.is_valid(table.column("user_id")),
        pc.is_in(table.column("event"), value_set=pa.array(sorted(names), pa.string())),
    )
    rows = table.filter(wanted).select(list(COLUMNS)).to_pylist()
    for row in rows:
        props = row["properties"]
        row["properties"] = orjson.loads(props) if props else {}
        if row["amount"] is not None:
            row["amount"] = float(row["amount"])
    return rows


def react_to_batch(
    engine: sa.Engine, prog: Programme, table: pa.Table, trusted: bool, now: datetime
) -> Any:
    """Run the loyalty reactions on a stored batch (see the module's docstring)."""
    from liucun.loyalty.reactions import react, trigger_events

    events = loyalty_events(table, trigger_events(prog))
    if not events:
        return None
    return react(engine, prog, events, trusted, now)
