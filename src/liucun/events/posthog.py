"""PostHog's capture payloads, translated to liucun events.

The shapes follow PostHog's public capture API (`/capture/`, `/batch/`, `/e/`): a single event
`{"api_key", "event", "properties", "timestamp", "uuid", "distinct_id"}` or a batch
`{"api_key", "batch": [...], "sent_at"}`; posthog-js may send base64 in a form field `data`
and gzip with `compression=gzip-js`. Pointing a PostHog SDK's host at liucun is enough.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from liucun.events.model import MAX_PAGE_CHARS

# PostHog's own event names for the events liucun's logic reads.
EVENT_NAMES = {
    "$pageview": "page_view",
    "$screen": "page_view",
    "$pageleave": "page_leave",
    "$identify": "identify",
    "$create_alias": "alias",
}
PLATFORM_BY_LIB = {
    "web": "web",
    "posthog-js": "web",
    "posthog-ios": "ios",
    "posthog-android": "android",
}
# Fixed namespace: an event sent without a uuid gets the same id on every retry.
_NAMESPACE = uuid.UUID("5b0c1f4e-8d6a-4c53-9a38-2f6f0d6e9b71")


def api_key_of(payload: Any) -> str | None:
    if isinstance(payload, dict):
        key = payload.get("api_key") or payload.get("token")
        if key is None and isinstance(payload.get("batch"), list) and payload["batch"]:
            first = payload["batch"][0]
            if isinstance(first, dict):
                key = first.get("api_key") or (first.get("properties") or {}).get("token")
        if key is None and isinstance(payload.get("properties"), dict):
            key = payload["properties"].get("token")
        return str(key) if key is not None else None
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return api_key_of(payload[0])
    return None


def events_of(payload: Any) -> tuple[list[Any], Any]:
    """The raw PostHog events of a payload and the batch's `sent_at` (or None)."""
    if isinstance(payload, list):
        return payload, None
    if isinstance(payload, dict) and "batch" in payload:
        batch = payload["batch"]
        return (batch if isinstance(batch, list) else [batch]), payload.get("sent_at")
    return [payload], payload.get("sent_at") if isinstance(payload, dict) else None


def _page(props: dict[str, Any]) -> str | None:
    if props.get("$screen_name"):
        return str(props["$screen_name"])[:MAX_PAGE_CHARS]
    url = props.get("$pathname") or props.get("$current_url")
    if not url:
        return None
    return (urlsplit(str(url)).path or "/")[:MAX_PAGE_CHARS]


def to_native(event: Any, received_at: datetime) -> Any:
    """One PostHog event as a native liucun event dict; non-dicts pass through to be rejected.

    An `offset` (ms before sending, PostHog's older clock hint) places the event at
    `received_at - offset` when it has no timestamp.
    """
    if not isinstance(event, dict):
        return event
    props = event.get("properties")
    props = dict(props) if isinstance(props, dict) else {}
    distinct = event.get("distinct_id", props.get("distinct_id"))
    distinct = str(distinct) if distinct is not None else None
    name = str(event.get("event", ""))
    native_name = EVENT_NAMES.get(name, name)
    device = props.get("$device_id")
    if native_name == "identify":
        device = props.get("$anon_distinct_id") or device
    elif native_name == "alias":
        props.setdefault("alias", props.get("alias") or props.get("$alias"))
    anonymous = str(device) if device else None
    # Before identify, posthog-js sends the device id as the distinct id: that is no user.
    user = distinct if distinct and distinct != anonymous else None
    event_id = event.get("uuid") or uuid.uuid5(
        _NAMESPACE, orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    )
    native: dict[str, Any] = {
        "event_id": str(event_id),
        "event": native_name or None,
        "user_id": user,
        "anonymous_id": anonymous,
        "session_id": props.get("$session_id"),
        "page": _page(props),
        "platform": PLATFORM_BY_LIB.get(str(props.get("$lib", ""))),
        "properties": props,
    }
    duration = props.get("$prev_pageview_duration")
    if native_name == "page_leave" and isinstance(duration, int | float):
        native["duration_ms"] = round(duration * 1000)
    if event.get("timestamp") is not None:
        native["ts"] = event["timestamp"]
    if event.get("sent_at") is not None:
        native["sent_at"] = event["sent_at"]
    offset = event.get("offset")
    if isinstance(offset, int) and "ts" not in native:
        native["ts"] = (received_at - timedelta(milliseconds=offset)).isoformat()
    return {k: v for k, v in native.items() if v is not None}
