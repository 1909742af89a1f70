"""The reactions step of ingest: queue a stored batch's events for the loyalty rules.

After a batch's events are durable and before the request is answered, the events the rules
react to are queued (loyalty/pending.py), on every accepted batch (retries included): if that
fails the client is told to retry, and the retry finds the events stored and queues them again;
running them twice awards nothing twice (each reaction is keyed by the event id). Events the
app's backend sent (authorised with the app's admin token) are `trusted`; only they can earn
by rules marked `server_only` (orders, refunds), because the write key is public.
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


def queue_reactions(
    engine: sa.Engine, prog: Programme, table: pa.Table, trusted: bool, now: datetime
) -> bool:
    """Queue a stored batch's events that the loyalty rules react to (module docstring);
    whether there were any."""
    from liucun.loyalty.pending import enqueue
    from liucun.loyalty.reactions import trigger_events

    events = loyalty_events(table, trigger_events(prog))
    if events:
        enqueue(engine, prog.app_id, events, trusted, now)
    return bool(events)
