"""App-local days of the simulated window and where they fall in UTC.

Day `d` runs from local midnight of `start + d` (inclusive) to the next local midnight
(exclusive), in the config's time zone; a day lasts 23 or 25 hours across a DST change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class SimClock:
    """`day_start_us[d]`: UTC microseconds of day d's local midnight (also for d == days)."""

    dates: tuple[dt.date, ...]
    day_start_us: npt.NDArray[np.int64]
    weekend: npt.NDArray[np.bool_]

    @classmethod
    def for_window(cls, start: dt.date, days: int, timezone: str) -> SimClock:
        zone = ZoneInfo(timezone)
        dates = tuple(start + dt.timedelta(days=d) for d in range(days + 1))
        starts = [
            (dt.datetime.combine(day, dt.time(0), tzinfo=zone) - _EPOCH) // _ONE_US for day in dates
        ]
        weekend = np.array([day.weekday() >= 5 for day in dates[:days]])
        return cls(dates[:days], np.array(starts, dtype=np.int64), weekend)

    def day_length_us(self, day: int) -> int:
        return int(self.day_start_us[day + 1] - self.day_start_us[day])
