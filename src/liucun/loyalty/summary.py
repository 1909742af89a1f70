"""What the member page shows at once: points, level and benefits, and the member day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.points import points_summary
from liucun.loyalty.programme import Programme


def member_summary(
    engine: sa.Engine, prog: Programme, user_id: str, now: datetime
) -> dict[str, Any]:
    """The member's points, level with its benefits, and today's member day (a user the
    programme has not seen yet gets the entry level and zero points)."""
    from liucun.loyalty.levels import level_status
    from liucun.loyalty.member_day import member_day_info

    return {
        "user_id": user_id,
        "points": points_summary(engine, prog, user_id, now).as_json(),
        "level": level_status(engine, prog, user_id, now),
        "member_day": member_day_info(prog, now),
        "playbook_revision": prog.revision,
    }
