"""Member day (会员日): app-local days of the month with a points multiplier and a discount.

A member day is a calendar day in the app's time zone: with the default Asia/Shanghai and day 8,
it runs from 8 November 00:00 Beijing (7 November 16:00 UTC) to 9 November 00:00 Beijing. A day
a month lacks (31 in April, 30 in February) is simply skipped that month.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from liucun.loyalty.programme import Programme

# looking this many months ahead always finds a listed day (every month has days 1–28, and 29–31
# recur within a year)
MONTHS_AHEAD = 13


def is_member_day(prog: Programme, moment: datetime) -> bool:
    """True when member day is enabled and the app-local day of `moment` is one of its days."""
    rules = prog.rules.member_day
    return rules.enabled and prog.day(moment).day in rules.days


def points_multiplier(prog: Programme, moment: datetime) -> Decimal:
    """The member-day points multiplier at `moment` (1 on other days), as an exact decimal of
    the figure the playbook gives."""
    if is_member_day(prog, moment):
        return Decimal(str(prog.rules.member_day.points_multiplier))
    return Decimal(1)


def next_member_day(prog: Programme, today: date) -> date | None:
    """The first member day on or after `today` (None when member day is off)."""
    rules = prog.rules.member_day
    if not rules.enabled:
        return None
    year, month = today.year, today.month
    for _ in range(MONTHS_AHEAD):
        length = calendar.monthrange(year, month)[1]
        for d in sorted(set(rules.days)):
            if d <= length and date(year, month, d) >= today:
                return date(year, month, d)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def member_day_info(prog: Programme, now: datetime) -> dict[str, Any]:
    """What the app shows about member day at `now`: whether today (app-local) is one, the next
    one from today on (today itself when it is one) and the days until it, the multiplier, the
    discount and the texts."""
    rules = prog.rules.member_day
    today = prog.day(now)
    upcoming = next_member_day(prog, today)
    return {
        "enabled": rules.enabled,
        "today": is_member_day(prog, now),
        "date": today.isoformat(),
        "days": sorted(set(rules.days)),
        "next_day": upcoming.isoformat() if upcoming else None,
        "days_until": (upcoming - today).days if upcoming else None,
        "points_multiplier": rules.points_multiplier,
        "discount_percent": rules.discount_percent,
        "zh": rules.zh,
        "en": rules.en,
    }
