"""Shared query building blocks over the rollup, written once through the dialect seam.

Persons are their integer keys (`person_keys`): `person_id` in these queries is a key, and
metrics only count it.
"""

from __future__ import annotations

from liucun.warehouse.dialects import Dialect


def persons_sql(dialect: Dialect, app: str) -> str:
    """(anonymous_key, user_key): each linked anonymous id of app `app` and the person it is.

    The earliest identify/alias link of an anonymous id wins.
    """
    return f"""
    SELECT anonymous_key, {dialect.first_by("user_key", "ts")} AS user_key
    FROM identities WHERE app_id = {app}
    GROUP BY anonymous_key
    """


def event_person_join(dialect: Dialect, app: str, events: str = "e", persons: str = "p") -> str:
    """The LEFT JOIN that finds the person of each row of table alias `events` (a row with a
    `distinct_key`); `event_person(events, persons)` is then the row's person key."""
    return (
        f"LEFT JOIN ({persons_sql(dialect, app)}) {persons} "
        f"ON {persons}.anonymous_key = {events}.distinct_key"
    )


def event_person(events: str = "e", persons: str = "p") -> str:
    """The person key of a row joined by `event_person_join`: the linked user's key, else the
    key of the id the row was sent under."""
    return f"coalesce({persons}.user_key, {events}.distinct_key)"


def person_days_sql(dialect: Dialect, app: str) -> str:
    """One row per (person, app-local day) of app `app`, rollup partials added up.

    A person is the user id an anonymous id was linked to, else the distinct id itself, so a
    visitor who logs in later is one person across both ids.
    """
    return f"""
    SELECT {event_person("u")} AS person_id, u.day AS day,
           sum(u.events) AS events, sum(u.visits) AS visits,
           sum(u.page_views) AS page_views, sum(u.orders) AS orders,
           sum(u.amount) AS amount, sum(u.duration_ms) AS duration_ms,
           min(u.first_ts) AS first_ts, max(u.last_ts) AS last_ts
    FROM user_days u
    {event_person_join(dialect, app, "u")}
    WHERE u.app_id = {app}
    GROUP BY {event_person("u")}, u.day
    """


def person_names_sql(app: str) -> str:
    """(person_id, person): the text id of every person key of app `app` — the user id of a
    linked person, else the id its events were sent under (the smallest, should two ids ever
    share a key)."""
    return f"""
    SELECT key AS person_id, min(name) AS person FROM (
        SELECT distinct_key AS key, distinct_id AS name FROM user_days WHERE app_id = {app}
        UNION ALL
        SELECT user_key AS key, user_id AS name FROM identities WHERE app_id = {app}
    ) names GROUP BY key
    """
