"""What a metric may be broken down by: an event column, a key of the event's properties, or
an attribute of the person's profile.

`platform`, `scene`, `page` and `referrer_page` are the event's own columns;
`properties.KEY` is the value at top-level KEY of its JSON properties, as text (null when
absent). Funnels break persons down by their first first-step event, retention by the
start event that put them in the cohort.

`profile.NAME` is the person's profile attribute NAME (engage's profiles: `$set` and
imports), its latest value, whatever the event: a table of (person_id, value) that the
caller reads from the state store (`PERSON_VALUES`) joins the persons once they are counted.
"""

from __future__ import annotations

import pyarrow as pa

from liucun.warehouse.store import EventStore

BREAKDOWN_COLUMNS = ("platform", "scene", "page", "referrer_page")
PROFILE_PREFIX = "profile."
# the name under which a query reads the persons' breakdown values
PERSON_VALUES = "person_values"
PERSON_VALUES_SCHEMA = pa.schema([("person_id", pa.int64()), ("value", pa.string())])


def profile_attribute(breakdown: str | None) -> str | None:
    """The attribute name of a `profile.NAME` breakdown; None for any other."""
    if breakdown is None or not breakdown.startswith(PROFILE_PREFIX):
        return None
    return breakdown.removeprefix(PROFILE_PREFIX)


def event_breakdown(breakdown: str | None) -> str | None:
    """The breakdown that the events carry: None when it is the person's (or none)."""
    return None if profile_attribute(breakdown) is not None else breakdown


def person_values_join(
    persons: str, person_values: pa.Table | None
) -> tuple[str, dict[str, pa.Table]]:
    """The LEFT JOIN adding `pv.value` to the rows of alias `persons` (a `person_id` column),
    and the query tables it reads. ValueError without the values."""
    if person_values is None:
        raise ValueError("a profile breakdown needs the persons' values (person_values)")
    join = f"LEFT JOIN {PERSON_VALUES} pv ON pv.person_id = {persons}.person_id"
    return join, {PERSON_VALUES: person_values.cast(PERSON_VALUES_SCHEMA)}


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
