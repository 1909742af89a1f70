"""Delivering due messages through their channels, with retries and a delivery log.

`deliver_due` claims the app's due messages — queued or held with `send_after` at or before
now, and messages claimed by a server that stopped more than `delivery.lease_s` ago — by a
conditional update (so two servers never both send one), then hands each to its channel:

- every attempt is logged in `engage_deliveries` (outcome, HTTP status, platform code,
  latency, error text);
- transient failures are retried up to `delivery.max_attempts` with backoff doubling from
  `backoff_s` to `max_backoff_s` (or the server's Retry-After, within that cap); when they run
  out the channel counts as down for this run: the message and the channel's other claimed
  messages go back to the queue for the next run (after `max_backoff_s`), and a message that
  has had 3 × `max_attempts` attempts in all fails (`transient_errors`);
- `sent` is final; `refused` (WeChat 43101) marks the subscription revoked — no credits —
  and is never retried; `failed` is never retried;
- a message that was not delivered gives back its cap slots, and, unless refused, its one-time
  credit (the platform did not use it).

The server runs `deliver_due` for every app every `deliver_every_s` seconds (`Deliverer`),
which is what sends held messages when the quiet hours end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from liucun.config import Settings
from liucun.engage.caps import release_caps
from liucun.engage.channels.accounts import load_account
from liucun.engage.channels.base import Attempt, ChannelAdapter, Outgoing
from liucun.engage.consent import mark_revoked, return_credit
from liucun.loyalty.members import as_utc
from liucun.playbook.messages import Delivery, MessageRules
from liucun.state.apps import App, list_apps
from liucun.state.db import write_transaction
from liucun.state.tables import engage_deliveries, engage_messages

log = logging.getLogger("liucun.engage.delivery")
Sleep = Callable[[float], None]
Clock = Callable[[], datetime]
# total attempts over all runs, as a multiple of `max_attempts`, before a message fails
RUNS = 3


@dataclass
class DeliveryReport:
    """One run: messages claimed, and what came of them (`requeued`: back in the queue after
    transient failures, for the next run)."""

    claimed: int = 0
    sent: int = 0
    refused: int = 0
    failed: int = 0
    requeued: int = 0
    attempts: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_channels(
    engine: sa.Engine,
    app_id: str,
    settings: Settings,
    client: httpx.Client,
) -> dict[str, ChannelAdapter]:
    """The app's configured channels, speaking to the platforms the settings name."""
    from liucun.engage.channels.alipay import AlipayChannel
    from liucun.engage.channels.webhook import WebhookChannel
    from liucun.engage.channels.wechat import WeChatChannel

    channels: dict[str, ChannelAdapter] = {}
    wechat = load_account(engine, app_id, "wechat")
    if wechat is not None:
        channels["wechat"] = WeChatChannel(engine, app_id, wechat, settings.wechat_api_base, client)
    alipay = load_account(engine, app_id, "alipay")
    if alipay is not None:
        channels["alipay"] = AlipayChannel(alipay, settings.alipay_gateway, client)
    webhook = load_account(engine, app_id, "webhook")
    if webhook is not None:
        channels["webhook"] = WebhookChannel(webhook, client)
    return channels


def _claim(engine: sa.Engine, app_id: str, now: datetime, rules: Delivery) -> list[Any]:
    m = engage_messages.c
    stale = now - timedelta(seconds=rules.lease_s)
    due = sa.or_(
        sa.and_(m.status.in_(("queued", "held")), m.send_after <= now),
        sa.and_(m.status == "sending", m.claimed_at <= stale),
    )
    with write_transaction(engine) as conn:
        query = (
            sa.select(m.message_key)
            .where(m.app_id == app_id, due)
            .order_by(m.send_after, m.message_key)
            .limit(rules.batch)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # another server's claim: skip
        keys = list(conn.execute(query).scalars())
        if not keys:
            return []
        conn.execute(
            sa.update(engage_messages)
            .where(m.app_id == app_id, m.message_key.in_(keys), due)
            .values(status="sending", claimed_at=now)
        )
        return list(
            conn.execute(
                sa.select(engage_messages)
                .where(m.app_id == app_id, m.message_key.in_(keys), m.claimed_at == now)
                .order_by(m.send_after, m.message_key)
            )
        )


def _outgoing(row: Any) -> Outgoing:
    return Outgoing(
        row.app_id,
        row.message_key,
        row.user_id,
        row.recipient or row.user_id,
        row.scenario,
        row.campaign_id,
        row.template_id,
        row.page,
        orjson.loads(row.data) if row.data else {},
        as_utc(row.decided_at),
    )


def _log(engine: sa.Engine, row: Any, number: int, attempt: Attempt, at: datetime) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            engage_deliveries.insert().values(
                app_id=row.app_id,
                message_key=row.message_key,
                channel=row.channel,
                attempt=number,
                attempted_at=at,
                outcome=attempt.outcome,
                http_status=attempt.http_status,
                code=attempt.code,
                latency_ms=attempt.latency_ms,
                error=(attempt.error or None) and attempt.error[:500],
            )
        )


def _settle(
    engine: sa.Engine,
    row: Any,
    status: str,
    now: datetime,
    attempts: int,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    """Record the message's end (sent, refused, failed) or its return to the queue, and give
    back what an undelivered message took — if this server still holds its claim."""
    m = engage_messages.c
    values: dict[str, Any] = {"status": status, "attempts": attempts, "error": error}
    if status == "queued":
        values.update(send_after=now, claimed_at=None)
    else:
        values.update(finished_at=now, reason=reason)
    with write_transaction(engine) as conn:
        done = conn.execute(
            sa.update(engage_messages)
            .where(
                m.app_id == row.app_id,
                m.message_key == row.message_key,
                m.status == "sending",
                m.claimed_at == row.claimed_at,
            )
            .values(values)
        ).rowcount
        if done != 1 or status in ("sent", "queued"):
            return
        args = (conn, row.app_id, row.user_id, row.channel, row.template_id)
        if status == "refused":
            mark_revoked(*args, now)
        elif row.credit == "one_time":
            return_credit(*args)
        release_caps(conn, row.app_id, row.user_id, [p for p in (row.cap_day, row.cap_month) if p])


def _wait(rules: Delivery, number: int, attempt: Attempt) -> float:
    wait = rules.backoff_s * 2 ** (number - 1)
    if attempt.retry_after is not None:
        wait = attempt.retry_after
    return min(wait, rules.max_backoff_s)


def _deliver_one(
    engine: sa.Engine,
    row: Any,
    channel: ChannelAdapter,
    rules: Delivery,
    clock: Clock,
    sleep: Sleep,
    report: DeliveryReport,
) -> bool:
    """Send one claimed message; False when its transient failures ran out (channel down)."""
    message = _outgoing(row)
    total = row.attempts
    token_retried = False
    tries = 0
    while True:
        tries += 1
        total += 1
        at = clock()
        attempt = channel.send(message)
        report.attempts += 1
        _log(engine, row, total, attempt, at)
        if attempt.outcome == "stale_token" and not token_retried:
            token_retried, tries = True, tries - 1  # a fresh token, at once, not counted
            continue
        if attempt.outcome == "sent":
            _settle(engine, row, "sent", clock(), total)
            report.sent += 1
            return True
        if attempt.outcome == "refused":
            _settle(engine, row, "refused", clock(), total, "no_credit", attempt.error)
            report.refused += 1
            return True
        if attempt.outcome in ("failed", "stale_token"):
            _settle(engine, row, "failed", clock(), total, "channel_error", attempt.error)
            report.failed += 1
            return True
        if tries < rules.max_attempts:
            sleep(_wait(rules, tries, attempt))
            continue
        if total >= RUNS * rules.max_attempts:
            _settle(engine, row, "failed", clock(), total, "transient_errors", attempt.error)
            report.failed += 1
            return True
        _requeue(engine, row, clock() + timedelta(seconds=rules.max_backoff_s), total, attempt)
        report.requeued += 1
        return False


def _requeue(engine: sa.Engine, row: Any, after: datetime, attempts: int, attempt: Any) -> None:
    m = engage_messages.c
    with write_transaction(engine) as conn:
        conn.execute(
            sa.update(engage_messages)
            .where(
                m.app_id == row.app_id,
                m.message_key == row.message_key,
                m.status == "sending",
                m.claimed_at == row.claimed_at,
            )
            .values(
                status="queued",
                send_after=after,
                claimed_at=None,
                attempts=attempts,
                error=attempt.error if attempt is not None else None,
            )
        )


def deliver_due(
    engine: sa.Engine,
    app: App,
    now: datetime,
    channels: Mapping[str, ChannelAdapter] | None = None,
    *,
    rules: MessageRules | None = None,
    settings: Settings | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock | None = None,
) -> DeliveryReport:
    """Send the app's messages due at `now` (module docstring). `channels`: the adapters by
    channel name (default: the app's accounts, at the platforms the settings name)."""
    if rules is None:
        from liucun.playbook.store import playbook_in_force

        rules = playbook_in_force(engine, app.app_id).playbook.engage.messages
    clock = clock or (lambda: datetime.now(UTC))
    now = now.astimezone(UTC)
    report = DeliveryReport()
    claimed = _claim(engine, app.app_id, now, rules.delivery)
    report.claimed = len(claimed)
    if not claimed:
        return report
    with httpx.Client(timeout=httpx.Timeout(rules.delivery.timeout_s)) as client:
        if channels is None:
            from liucun.config import load_settings

            channels = build_channels(engine, app.app_id, settings or load_settings(), client)
        down: set[str] = set()
        for row in claimed:
            channel = channels.get(row.channel)
            report.by_channel[row.channel] = report.by_channel.get(row.channel, 0) + 1
            if row.channel in down:
                _requeue(engine, row, now, row.attempts, None)
                report.requeued += 1
                continue
            if channel is None:
                _settle(
                    engine,
                    row,
                    "failed",
                    clock(),
                    row.attempts,
                    "no_channel_account",
                    f"no {row.channel} account is set for the app",
                )
                report.failed += 1
                continue
            if not _deliver_one(engine, row, channel, rules.delivery, clock, sleep, report):
                down.add(row.channel)
    return report


class Deliverer:
    """A background thread that runs `deliver_due` for every app every `interval` seconds."""

    def __init__(
        self,
        state: sa.Engine,
        settings: Settings,
        interval: float,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._state = state
        self._settings = settings
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="liucun-deliver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def tick(self) -> None:
        for app in list_apps(self._state):
            try:
                report = deliver_due(
                    self._state,
                    app,
                    self._clock(),
                    settings=self._settings,
                    sleep=self._pause,
                    clock=self._clock,
                )
            except Exception:  # one app's trouble does not stop the others
                log.exception("delivering %s's messages failed", app.name)
                continue
            if report.claimed:
                log.info("messages of %s: %s", app.name, report.as_json())

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a backoff that a stopping server cuts short

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self._interval)
