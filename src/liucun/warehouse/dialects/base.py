"""The dialect seam: what analytics may ask of an event store's SQL, engine by engine.

Analytics code builds SQL only from these methods and standard SQL; a new engine (ClickHouse)
is a new subclass, not a change to analytics. A method a dialect cannot honour raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from liucun.warehouse.schema import Column


class Dialect(ABC):
    name: str

    @abstractmethod
    def column_type(self, column: Column) -> str:
        """The SQL type that stores a logical column type."""

    @abstractmethod
    def local_date(self, ts: str, tz: str) -> str:
        """The calendar date of UTC instant `ts` in time zone `tz` (a SQL expression or literal)."""

    @abstractmethod
    def first_by(self, value: str, order: str) -> str:
        """The aggregate: `value` of the row with the smallest `order`."""

    @abstractmethod
    def param(self, name: str) -> str:
        """The placeholder for a named query parameter."""

    @abstractmethod
    def period_start(self, day: str, period: str, week_starts_sunday: bool) -> str:
        """The first day of the day/week/month that DATE expression `day` falls in, as a DATE."""

    @abstractmethod
    def periods_between(self, first: str, second: str, period: str) -> str:
        """Whole periods from period start `first` to period start `second` (both DATEs)."""

    @abstractmethod
    def add_days(self, day: str, days: str) -> str:
        """DATE expression `day` moved by the integer expression `days`."""

    def quote(self, text: str) -> str:
        """A string literal (for time-zone names and the like, never for user input)."""
        return "'" + text.replace("'", "''") + "'"
