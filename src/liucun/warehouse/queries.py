"""Shared query building blocks over the rollup, written once through the dialect seam."""

from __future__ import annotations

from liucun.warehouse.dialects import Dialect


def persons_sql(dialect: Dialect, app: str) -> str:
    """(anonymous_id, user_id): each linked anonymous id of app `app` and the person it is.

    The earliest identify/alias link of an anonymous id wins.
    """
    return f"""
    SELECT anonymous_id, {dialect.first_by("user_id", "ts")} AS user_id
    FROM identities WHERE app_id = {app}
    GROUP BY anonymous_id
    """


def person_days_sql(dialect: Dialect, app: str) -> str:
    """One row per (person, app-local day) of app `app`, rollup partials added up.

    A person is the user id an anonymous id was linked to, else the distinct id itself, so a
    visitor who logs in later is one person across both ids.
    """
    return f"""
    SELECT coalesce(p.user_id, u.distinct_id) AS person_id, u.day AS day,
           sum(u.events) AS events, sum(u.visits) AS visits,
           sum(u.page_views) AS page_views, sum(u.orders) AS orders,
           sum(u.amount) AS amount, sum(u.duration_ms) AS duration_ms,
           min(u.first_ts) AS first_ts, max(u.last_ts) AS last_ts
    FROM user_days u
    LEFT JOIN ({persons_sql(dialect, app)}) p ON p.anonymous_id = u.distinct_id
    WHERE u.app_id = {app}
    GROUP BY coalesce(p.user_id, u.distinct_id), u.day
    """
