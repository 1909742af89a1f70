"""Quiet hours: app-local hours in which no message is sent.

A window from `start` to `end` holds the instants whose app-local wall-clock time `t` has
`start <= t < end`, or, when it spans midnight (`start > end`, 22:00–08:00 by default),
`t >= start or t < end`. A message decided inside the window is held until the window's end:
the next app-local `end` after the decision, read in the zone's offset on that day (so across a
DST switch the wait is an hour shorter or longer, and the message still goes out at 08:00 on
the clock). 21:59:59 sends; 22:00:00 and 07:59:59 are held until 08:00; 08:00:00 sends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from liucun.playbook.messages import QuietHours


def in_quiet_hours(local: datetime, rules: QuietHours) -> bool:
    """Whether app-local `local` falls inside the window."""
    if not rules.enabled:
        return False
    t = local.time().replace(tzinfo=None)
    if rules.start < rules.end:
        return rules.start <= t < rules.end
    return t >= rules.start or t < rules.end


def quiet_until(now: datetime, tz: ZoneInfo, rules: QuietHours) -> datetime | None:
    """When the quiet window that `now` falls in ends (aware UTC); None outside the window."""
    local = now.astimezone(tz)
    if not in_quiet_hours(local, rules):
        return None
    day = local.date()
    if local.time().replace(tzinfo=None) >= rules.end:
        day += timedelta(days=1)  # in the evening part: the window ends tomorrow morning
    end = datetime.combine(day, rules.end, tzinfo=tz)
    # an `end` that a spring-forward gap skips reads in the offset before the gap; the
    # round trip through UTC moves it to the first real instant after it
    return end.astimezone(UTC)
