"""Calendar periods (day, week, month) of app-local dates, for laying out metric results."""

from __future__ import annotations

from datetime import date, timedelta

from liucun.analytics.params import Period


def period_start(day: date, period: Period, week_starts_sunday: bool = False) -> date:
    """The first day of the period `day` falls in; weeks start on Monday unless told Sunday."""
    if period == Period.day:
        return day
    if period == Period.month:
        return day.replace(day=1)
    back = (day.weekday() + 1) % 7 if week_starts_sunday else day.weekday()
    return day - timedelta(days=back)


def next_period(start: date, period: Period) -> date:
    """The start of the period after the one starting on `start`."""
    if period == Period.day:
        return start + timedelta(days=1)
    if period == Period.week:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_period(start: date, period: Period, week_starts_sunday: bool = False) -> date:
    """The start of the period before the one starting on `start`."""
    return period_start(start - timedelta(days=1), period, week_starts_sunday)


def period_starts(first: date, last: date, period: Period, week_starts_sunday: bool) -> list[date]:
    """Starts of the periods that overlap the dates `first` … `last`, in order."""
    out = []
    p = period_start(first, period, week_starts_sunday)
    while p <= last:
        out.append(p)
        p = next_period(p, period)
    return out
