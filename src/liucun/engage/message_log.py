"""Reading messages and their delivery attempts back (admin API and CLI)."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from liucun.loyalty.members import as_utc
from liucun.state.tables import engage_deliveries, engage_messages

STATUSES = ("queued", "held", "skipped", "sending", "sent", "refused", "failed")


def _when(value: Any) -> Any:
    return None if value is None else as_utc(value)


def message_json(row: Any) -> dict[str, Any]:
    """A message as the API shows it (docs/messages.md#messages)."""
    return {
        "key": row.message_key,
        "user_id": row.user_id,
        "scenario": row.scenario,
        "campaign_id": row.campaign_id,
        "status": row.status,
        "reason": row.reason,
        "channel": row.channel,
        "template_id": row.template_id,
        "page": row.page,
        "data": orjson.loads(row.data) if row.data else None,
        "credit": row.credit,
        "decided_at": as_utc(row.decided_at),
        "send_after": _when(row.send_after),
        "attempts": row.attempts,
        "finished_at": _when(row.finished_at),
        "error": row.error,
    }


def list_messages(
    engine: sa.Engine,
    app_id: str,
    status: str | None = None,
    user_id: str | None = None,
    campaign_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The app's messages, newest decision first, optionally of one status, user or campaign."""
    m = engage_messages.c
    query = sa.select(engage_messages).where(m.app_id == app_id)
    if status is not None:
        query = query.where(m.status == status)
    if user_id is not None:
        query = query.where(m.user_id == user_id)
    if campaign_id is not None:
        query = query.where(m.campaign_id == campaign_id)
    query = query.order_by(m.decided_at.desc(), m.message_key).limit(limit)
    with engine.connect() as conn:
        return [message_json(r) for r in conn.execute(query)]


def message_counts(engine: sa.Engine, app_id: str) -> dict[str, int]:
    """Messages per status (skipped ones per reason too: `skipped:no_credit`)."""
    m = engage_messages.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.status, m.reason, sa.func.count())
            .where(m.app_id == app_id)
            .group_by(m.status, m.reason)
        ).all()
    counts: dict[str, int] = {}
    for status, reason, n in rows:
        counts[status] = counts.get(status, 0) + n
        if status == "skipped":
            counts[f"skipped:{reason}"] = n
    return counts


def find_message(engine: sa.Engine, app_id: str, key: str) -> dict[str, Any] | None:
    """A message with every delivery attempt, in order; None if no such key."""
    m, d = engage_messages.c, engage_deliveries.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(engage_messages).where(m.app_id == app_id, m.message_key == key)
        ).first()
        if row is None:
            return None
        attempts = conn.execute(
            sa.select(engage_deliveries)
            .where(d.app_id == app_id, d.message_key == key)
            .order_by(d.delivery_id)
        ).all()
    return {
        **message_json(row),
        "deliveries": [
            {
                "attempt": a.attempt,
                "attempted_at": as_utc(a.attempted_at),
                "outcome": a.outcome,
                "http_status": a.http_status,
                "code": a.code,
                "latency_ms": a.latency_ms,
                "error": a.error,
            }
            for a in attempts
        ],
    }
