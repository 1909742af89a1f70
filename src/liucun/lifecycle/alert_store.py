"""Alerts kept in the state store: stored once per (app, kind, subject, period), listed,
acknowledged, and their webhook deliveries recorded."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.lifecycle.alerts import Alert
from liucun.state.tables import alert_deliveries, alerts

# pending: waiting for the webhook; delivered: it answered 2xx; failed: it refused the alert
# (a 4xx other than 429), which a retry would not change; off: no webhook when it fired.
Delivery = Literal["pending", "delivered", "failed", "off"]
Status = Literal["open", "all"]


class AlertNotFoundError(LookupError):
    """No alert of that id for the app."""


@dataclass(frozen=True)
class StoredAlert:
    """An alert as kept: its id, what fired (see `Alert`), when, and where it stands."""

    alert_id: int
    app_id: str
    kind: str
    scope: str
    subject: str
    period: str
    severity: str
    figures: dict[str, Any]
    title_zh: str
    title_en: str
    action_zh: str
    action_en: str
    as_of: date
    created_at: datetime
    acknowledged_at: datetime | None
    idempotency_key: str
    delivery: str
    delivered_at: datetime | None
    attempts: int


@dataclass(frozen=True)
class Attempt:
    """One POST of an alert to the webhook: the HTTP status it got, or the error, and the
    outcome (`delivered`, `retry` or `failed`)."""

    alert_id: int
    attempt: int
    url: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    outcome: str


def idempotency_key(app_id: str, kind: str, subject: str, period: str) -> str:
    """The alert's key for the webhook: the same for the same alert, whichever run fired it."""
    text = "\x1f".join((app_id, kind, subject, period))
    return "alert-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _utc(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; every time stored here is UTC
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _stored(row: Any) -> StoredAlert:
    m = dict(row._mapping)
    m["figures"] = json.loads(m["figures"])
    for k in ("created_at", "acknowledged_at", "delivered_at"):
        m[k] = _utc(m[k])
    return StoredAlert(**m)


def _insert(engine: sa.Engine) -> Any:
    dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
    return dialect.insert(alerts)


def store_alerts(
    engine: sa.Engine,
    app_id: str,
    fired: Sequence[Alert],
    as_of: date,
    webhook: bool,
    user_alerts: bool = True,
) -> list[tuple[StoredAlert, bool]]:
    """Keep the fired alerts; each (app, kind, subject, period) is stored once, whoever else
    stores it at the same time. Returns every fired alert as stored, with whether this call
    stored it (new). New alerts wait for delivery when there is a `webhook`, user-level ones
    only if `user_alerts`."""
    now = datetime.now(UTC)
    keyed = {idempotency_key(app_id, a.kind, a.subject, a.period): a for a in fired}
    found: dict[str, tuple[StoredAlert, bool]] = {}
    with engine.begin() as conn:
        # in key order: two checks storing the same alerts take their row locks in the same
        # order, so that neither waits for the other in a circle (PostgreSQL)
        for key, a in sorted(keyed.items()):
            row = {
                "app_id": app_id,
                "kind": a.kind,
                "scope": a.scope,
                "subject": a.subject,
                "period": a.period,
                "severity": a.severity,
                "figures": json.dumps(a.figures, ensure_ascii=False, sort_keys=True),
                "title_zh": a.title_zh,
                "title_en": a.title_en,
                "action_zh": a.action_zh,
                "action_en": a.action_en,
                "as_of": as_of,
                "created_at": now,
                "idempotency_key": key,
                "delivery": "pending" if webhook and (a.scope == "app" or user_alerts) else "off",
                "attempts": 0,
            }
            # ON CONFLICT DO NOTHING: a concurrent check storing the same alert waits for
            # the other's commit and then skips, on SQLite and PostgreSQL alike
            statement = _insert(engine).values(**row).on_conflict_do_nothing()
            new = conn.execute(statement.returning(alerts.c.alert_id)).first() is not None
            stored = conn.execute(sa.select(alerts).where(alerts.c.idempotency_key == key)).one()
            found[key] = (_stored(stored), new)
    return [found[key] for key in keyed]


def list_alerts(
    engine: sa.Engine,
    app_id: str,
    status: Status = "open",
    kind: str | None = None,
    severity: str | None = None,
    limit: int = 100,
) -> list[StoredAlert]:
    """The app's alerts, newest first: `open` ones (not acknowledged) or `all`, optionally
    of one kind or severity, at most `limit`."""
    query = sa.select(alerts).where(alerts.c.app_id == app_id)
    if status == "open":
        query = query.where(alerts.c.acknowledged_at.is_(None))
    if kind is not None:
        query = query.where(alerts.c.kind == kind)
    if severity is not None:
        query = query.where(alerts.c.severity == severity)
    query = query.order_by(alerts.c.alert_id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_stored(r) for r in conn.execute(query)]


def get_alert(engine: sa.Engine, app_id: str, alert_id: int) -> StoredAlert:
    """Alert `alert_id` of the app; AlertNotFoundError if the app has none of that id."""
    query = sa.select(alerts).where(alerts.c.app_id == app_id, alerts.c.alert_id == alert_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise AlertNotFoundError(f"app {app_id} has no alert {alert_id}")
    return _stored(row)


def acknowledge(engine: sa.Engine, app_id: str, alert_id: int) -> StoredAlert:
    """Mark the alert seen; acknowledging it again keeps the first time."""
    where = (alerts.c.app_id == app_id, alerts.c.alert_id == alert_id)
    with engine.begin() as conn:
        conn.execute(
            alerts.update()
            .where(*where, alerts.c.acknowledged_at.is_(None))
            .values(acknowledged_at=datetime.now(UTC))
        )
    return get_alert(engine, app_id, alert_id)


def pending_alerts(engine: sa.Engine, app_id: str) -> list[StoredAlert]:
    """The app's alerts waiting for the webhook, oldest first."""
    query = (
        sa.select(alerts)
        .where(alerts.c.app_id == app_id, alerts.c.delivery == "pending")
        .order_by(alerts.c.alert_id)
    )
    with engine.connect() as conn:
        return [_stored(r) for r in conn.execute(query)]


def record_attempt(engine: sa.Engine, attempt: Attempt) -> None:
    """Keep one delivery attempt and move its alert on: delivered and failed are final."""
    changes: dict[str, Any] = {"attempts": alerts.c.attempts + 1}
    if attempt.outcome == "delivered":
        changes |= {"delivery": "delivered", "delivered_at": attempt.attempted_at}
    elif attempt.outcome == "failed":
        changes["delivery"] = "failed"
    with engine.begin() as conn:
        conn.execute(
            alert_deliveries.insert().values(
                alert_id=attempt.alert_id,
                attempt=attempt.attempt,
                url=attempt.url[:2000],
                attempted_at=attempt.attempted_at,
                status_code=attempt.status_code,
                error=None if attempt.error is None else attempt.error[:500],
                outcome=attempt.outcome,
            )
        )
        # a final state is never undone by a slower run still retrying the same alert
        conn.execute(
            alerts.update()
            .where(alerts.c.alert_id == attempt.alert_id, alerts.c.delivery == "pending")
            .values(**changes)
        )


def attempts_of(engine: sa.Engine, alert_id: int) -> list[Attempt]:
    """Every delivery attempt of the alert, in order."""
    d = alert_deliveries.c
    query = (
        sa.select(d.alert_id, d.attempt, d.url, d.attempted_at, d.status_code, d.error, d.outcome)
        .where(d.alert_id == alert_id)
        .order_by(d.delivery_id)
    )
    with engine.connect() as conn:
        return [
            Attempt(**{**r._mapping, "attempted_at": _utc(r.attempted_at)})
            for r in conn.execute(query)
        ]


def alert_json(alert: StoredAlert) -> dict[str, Any]:
    """An alert as the CLI's `--json` and the admin API show it (docs/alerts.md)."""
    return {
        "id": alert.alert_id,
        "kind": alert.kind,
        "scope": alert.scope,
        "subject": alert.subject,
        "period": alert.period,
        "severity": alert.severity,
        "title": {"zh": alert.title_zh, "en": alert.title_en},
        "action": {"zh": alert.action_zh, "en": alert.action_en},
        "figures": alert.figures,
        "as_of": alert.as_of.isoformat(),
        "created_at": alert.created_at.isoformat(),
        "acknowledged_at": alert.acknowledged_at and alert.acknowledged_at.isoformat(),
        "delivery": alert.delivery,
        "delivered_at": alert.delivered_at and alert.delivered_at.isoformat(),
        "attempts": alert.attempts,
    }
