"""The generic signed webhook: each message is POSTed as JSON to the app's URL, for its own
backend to deliver (SMS, app push, another platform).

Headers: `Content-Type: application/json; charset=utf-8`, `Idempotency-Key` (the message key,
the same on every retry), `X-Liucun-Timestamp` (Unix seconds) and `X-Liucun-Signature:
v1=<hex HMAC-SHA256 of "{timestamp}.{body}" with the webhook secret>`. To verify: recompute it
over the raw body bytes, compare in constant time, and refuse a timestamp more than
`TOLERANCE_S` from your clock (a replayed request). 2xx is delivered; 429, 5xx and timeouts
are retried; any other status fails the message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from liucun.engage.channels.accounts import Account
from liucun.engage.channels.base import Attempt, Outgoing, http_outcome, timed

TIMESTAMP_HEADER = "X-Liucun-Timestamp"
SIGNATURE_HEADER = "X-Liucun-Signature"
TOLERANCE_S = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Liucun-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signed: str, now: float) -> bool:
    """What a receiver checks: the signature, and a timestamp within `TOLERANCE_S` of `now`."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_S:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signed)


def payload(message: Outgoing) -> dict[str, Any]:
    """The JSON body POSTed for a message (docs/messages.md#webhook)."""
    return {
        "type": "liucun.message",
        "idempotency_key": message.message_key,
        "app_id": message.app_id,
        "user_id": message.user_id,
        "recipient": message.recipient,
        "scenario": message.scenario,
        "campaign_id": message.campaign_id,
        "template_id": message.template_id,
        "page": message.page,
        "data": message.data,
        "decided_at": message.decided_at.isoformat(),
    }


class WebhookChannel:
    name = "webhook"

    def __init__(self, account: Account, client: httpx.Client) -> None:
        self.account = account
        self.client = client

    def send(self, message: Outgoing) -> Attempt:
        body = json.dumps(payload(message), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))  # the wall clock: receivers check it
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.message_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(self.account.secrets["secret"], timestamp, body),
        }
        call = timed(
            self.client, "POST", self.account.settings["url"], content=body, headers=headers
        )
        failed = http_outcome(call)
        if failed is not None:
            return failed
        assert call.response is not None
        return Attempt("sent", call.response.status_code, None, None, call.latency_ms)
