"""Delivering alerts to the operator's webhook: one JSON POST per alert, retried with backoff;
and the check run that fires, stores and delivers them.

Every attempt carries the alert's `Idempotency-Key`, the same on every retry and every later
run, so a receiver that keeps the keys it has seen takes each alert once even when an answer
was lost and the alert is sent again. Connection errors, timeouts, 429 and 5xx answers are
retried, up to `max_attempts` with waits of `backoff_s` doubling to `max_backoff_s` (or the
server's `Retry-After`, within that cap); any other answer that is not 2xx fails the alert for
good. When the attempts run out the alert stays pending, and so do the ones after it: the next
run (`liucun alerts check` or `deliver`) tries again. Every attempt is recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from liucun import __version__
from liucun.lifecycle.alert_store import (
    Attempt,
    StoredAlert,
    alert_json,
    pending_alerts,
    record_attempt,
    store_alerts,
)
from liucun.lifecycle.alerts import check_alerts
from liucun.playbook.alerts import Webhook
from liucun.playbook.schema import Playbook
from liucun.state.apps import App
from liucun.warehouse.store import EventStore

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery run: alerts delivered, refused for good (failed), and still pending."""

    delivered: int
    failed: int
    pending: int


def payload(app: App, alert: StoredAlert) -> dict[str, Any]:
    """The JSON body POSTed for an alert (docs/alerts.md, "Webhook"): the alert as the API
    shows it, less what only this server knows (acknowledgement, delivery state)."""
    body = alert_json(alert)
    del body["acknowledged_at"], body["delivery"]
    return {
        "type": "liucun.alert",
        "idempotency_key": alert.idempotency_key,
        "app": {"id": app.app_id, "name": app.name},
        **body,
    }


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _wait(webhook: Webhook, attempt: int, response: httpx.Response | None) -> float:
    """Seconds before attempt `attempt + 1`: the server's Retry-After (in seconds) if it sent
    one, else the backoff doubled per attempt; never above the cap."""
    wait = webhook.backoff_s * 2 ** (attempt - 1)
    retry_after = response.headers.get("retry-after", "") if response is not None else ""
    if retry_after.strip().isdigit():
        wait = float(retry_after)
    return min(wait, webhook.max_backoff_s)


def deliver_alert(
    state: sa.Engine,
    app: App,
    alert: StoredAlert,
    webhook: Webhook,
    client: httpx.Client,
    sleep: Sleep = time.sleep,
) -> str:
    """POST the alert until it is delivered, refused, or the attempts run out; record each
    attempt. Returns the outcome of the last: `delivered`, `failed` or `retry` (still
    pending)."""
    assert webhook.url is not None
    url = str(webhook.url)
    body = json.dumps(payload(app, alert), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": alert.idempotency_key,
        "User-Agent": f"liucun/{__version__}",
    }
    outcome = "retry"
    for attempt in range(1, webhook.max_attempts + 1):
        response: httpx.Response | None = None
        status: int | None = None
        error: str | None = None
        at = datetime.now(UTC)
        try:
            response = client.post(url, content=body, headers=headers)
            status = response.status_code
            if 200 <= status < 300:
                outcome = "delivered"
            elif _retryable(status):
                outcome = "retry"
            else:
                outcome, error = "failed", response.text[:200] or None
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
            outcome, error = "retry", f"{type(exc).__name__}: {exc}"
        record_attempt(state, Attempt(alert.alert_id, attempt, url, at, status, error, outcome))
        if outcome != "retry":
            return outcome
        if attempt < webhook.max_attempts:
            sleep(_wait(webhook, attempt, response))
    return outcome


def deliver_pending(
    state: sa.Engine,
    app: App,
    webhook: Webhook,
    sleep: Sleep = time.sleep,
) -> DeliveryReport:
    """Deliver the app's pending alerts, oldest first. An alert whose attempts run out stops
    the run (the webhook is down: the others would wait as long for nothing); it and the rest
    stay pending for the next run. Nothing is sent when there is no webhook URL."""
    pending = pending_alerts(state, app.app_id)
    if webhook.url is None or not pending:
        return DeliveryReport(0, 0, len(pending))
    delivered = failed = 0
    with httpx.Client(timeout=httpx.Timeout(webhook.timeout_s)) as client:
        for alert in pending:
            outcome = deliver_alert(state, app, alert, webhook, client, sleep)
            if outcome == "retry":
                break
            delivered += outcome == "delivered"
            failed += outcome == "failed"
    return DeliveryReport(delivered, failed, len(pending) - delivered - failed)


@dataclass(frozen=True)
class CheckReport:
    """One check: the day checked, every alert the rules fired (as stored, with whether this
    check stored it first), and the delivery run that followed."""

    as_of: date
    alerts: list[tuple[StoredAlert, bool]]
    delivery: DeliveryReport


def check_and_deliver(
    store: EventStore,
    state: sa.Engine,
    app: App,
    as_of: date,
    playbook: Playbook,
    sleep: Sleep = time.sleep,
) -> CheckReport:
    """Run the alert rules for `app` on `as_of`, store the alerts (each once), then deliver
    every pending alert of the app, the new ones and those earlier runs could not."""
    fired = check_alerts(store, state, app, as_of, playbook)
    webhook = playbook.alerts.webhook
    stored = store_alerts(
        state, app.app_id, fired, as_of, webhook.url is not None, webhook.user_alerts
    )
    return CheckReport(as_of, stored, deliver_pending(state, app, webhook, sleep))


def check_json(report: CheckReport) -> dict[str, Any]:
    """A check as the CLI's `--json` and the admin API show it (docs/alerts.md)."""
    return {
        "as_of": report.as_of.isoformat(),
        "alerts": [{**alert_json(a), "new": new} for a, new in report.alerts],
        "delivery": {
            "delivered": report.delivery.delivered,
            "failed": report.delivery.failed,
            "pending": report.delivery.pending,
        },
    }
