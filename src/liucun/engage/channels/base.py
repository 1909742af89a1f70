"""What every channel adapter shares: the message it is handed, what one attempt came to, and
timed HTTP calls.

An adapter makes ONE attempt per `send` and says what came of it; the delivery loop
(engage/delivery.py) logs every attempt, waits and retries transient failures, and settles the
message. Outcomes:
- `sent`: the platform took the message;
- `retry`: a transient failure (timeout, connection error, HTTP 429/5xx, "system busy");
- `refused`: the user has no credit or unsubscribed (WeChat 43101): never retried;
- `failed`: any other refusal (bad openid, bad data, bad credentials): never retried;
- `stale_token`: the access token was not accepted; the adapter fetches a new one on the next
  attempt, which the loop makes at once, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

from liucun import __version__

Outcome = Literal["sent", "retry", "refused", "failed", "stale_token"]
USER_AGENT = f"liucun/{__version__}"
ERROR_MAX = 500


@dataclass(frozen=True)
class Outgoing:
    """A message as a channel sends it: `data` holds the template fields, filled in."""

    app_id: str
    message_key: str
    user_id: str
    recipient: str
    scenario: str
    campaign_id: str | None
    template_id: str
    page: str | None
    data: dict[str, str]
    decided_at: datetime


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    http_status: int | None = None
    code: str | None = None  # the platform's own code (errcode; code/sub_code)
    error: str | None = None
    latency_ms: int | None = None
    retry_after: float | None = None  # seconds the server asked to wait (HTTP Retry-After)


class ChannelAdapter(Protocol):
    name: str

    def send(self, message: Outgoing) -> Attempt:
        """One attempt to hand `message` to the platform."""
        ...


@dataclass(frozen=True)
class Call:
    """One HTTP exchange: the response (None when none came), its latency, the error text."""

    response: httpx.Response | None
    latency_ms: int
    error: str | None


def timed(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Call:
    """`client.request(...)`, timed; transport failures (refused, reset, timeouts) are caught
    and described rather than raised."""
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    started = time.perf_counter()
    try:
        response = client.request(method, url, headers=headers, **kwargs)
        error = None
    except httpx.TransportError as exc:
        response, error = None, f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
    return Call(response, round((time.perf_counter() - started) * 1000), error)


def http_outcome(call: Call) -> Attempt | None:
    """The attempt for a call that never got a usable 2xx answer (None when it did): no answer
    or 429/5xx is transient, any other status is a refusal."""
    if call.response is None:
        return Attempt("retry", None, None, call.error, call.latency_ms)
    status = call.response.status_code
    if 200 <= status < 300:
        return None
    retry_after = call.response.headers.get("retry-after", "").strip()
    wait = float(retry_after) if retry_after.isdigit() else None
    outcome: Outcome = "retry" if status == 429 or status >= 500 else "failed"
    text = call.response.text[:ERROR_MAX] or None
    return Attempt(outcome, status, None, text, call.latency_ms, wait)
