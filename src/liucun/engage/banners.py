"""Banners: the payloads of active banner campaigns for a treatment user who was acted on,
read by the mini-program (`GET /v1/engage/banners`, with a user token)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from liucun.engage.campaigns import list_campaigns
from liucun.loyalty.members import as_utc
from liucun.loyalty.programme import Programme
from liucun.state.tables import campaign_actions


def user_banners(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The banners to show `user_id` now: one per active campaign with a banner, within its
    dates, that acted on the user (holdout and global-control users have no action, so they
    see none). Newest first."""
    day = prog.day(now)
    showing = {
        c.campaign_id: c
        for c in list_campaigns(engine, prog.app_id, "active")
        if c.spec.action.banner is not None
        and (c.starts_on is None or c.starts_on <= day)
        and (c.ends_on is None or day <= c.ends_on)
    }
    if not showing:
        return []
    a = campaign_actions.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.campaign_id, sa.func.max(a.created_at).label("since"))
            .where(
                a.app_id == prog.app_id,
                a.user_id == user_id,
                a.campaign_id.in_(list(showing)),
                a.status == "done",
            )
            .group_by(a.campaign_id)
        ).all()
    banners = [
        {
            "campaign_id": r.campaign_id,
            "campaign": showing[r.campaign_id].name,
            "payload": showing[r.campaign_id].spec.action.banner,
            "since": as_utc(r.since),
        }
        for r in rows
    ]
    banners.sort(key=lambda b: (b["since"], b["campaign_id"]), reverse=True)
    return banners
