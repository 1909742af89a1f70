"""What a metric may be broken down by: an event column, or a key of the event's properties.

`platform`, `scene`, `page` and `referrer_page` are the event's own columns;
`properties.KEY` is the value at top-level KEY of its JSON properties, as text (null when
absent). Funnels break persons down by their first first-step event, retention by the
start event that put them in the cohort.
"""

from __future__ import annotations

from liucun.warehouse.store import EventStore

BREAKDOWN_COLUMNS = ("platform", "scene", "page", "referrer_page")


def field_expr(store: EventStore, key: str, events: str = "e") -> str:
    """SQL for the text value of `key` (a column or `properties.KEY`) on the event row alias
    `events`."""
    if key in BREAKDOWN_COLUMNS:
        return f"{events}.{key}"
    return store.dialect.json_text(f"{events}.properties", key.removeprefix("properties."))


def breakdown_expr(store: EventStore, breakdown: str | None, events: str = "e") -> str:
    """The breakdown value of the event row alias `events`: a text null without a breakdown."""
    if breakdown is None:
        return f"CASE WHEN 1 = 0 THEN {events}.event END"  # a null of the text type, any dialect
    return field_expr(store, breakdown, events)
