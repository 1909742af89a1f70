"""Helpers for tests that drive the HTTP app."""

from __future__ import annotations

import uuid
from typing import Any


def event(name: str = "page_view", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event": name,
        "anonymous_id": "device-1",
        "ts": "2026-11-20T08:00:00Z",
    }
    if name == "page_view":
        base["page"] = "pages/home"
    base.update(fields)
    return base
