"""The dialect seam: what analytics may ask of an event store's SQL, engine by engine.

Analytics code builds SQL only from these methods and standard SQL; a new engine (ClickHouse)
is a new subclass, not a change to analytics. A method a dialect cannot honour raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from liucun.warehouse.schema import Column


class Dialect(ABC):
    name: str
    # the keyword that makes a CTE computed once however often it is read ("" where the
    # engine has none)
    materialized: str = ""
    # whether an as-of join probes a hash table of its right side (ClickHouse) rather than
    # sorting both sides (DuckDB): a plan choice for a query, never a change of its answer
    asof_join_by_hash: bool = False
    # settings every session of the engine needs for the SQL below to mean what it says
    session_settings: ClassVar[Mapping[str, int]] = {}

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
    def last_by(self, value: str, order: str) -> str:
        """The aggregate: `value` of the row with the largest `order` (a tuple `(a, b)` orders
        by a, then b)."""

    @abstractmethod
    def first_by_with_nulls(self, value: str, order: str) -> str:
        """Like `first_by`, but a null `value` on the first row is the answer, not skipped."""

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

    @abstractmethod
    def epoch_us(self, ts: str) -> str:
        """Microseconds since 1970-01-01 UTC of timestamp `ts`, as a 64-bit integer."""

    def nullable(self, value: str) -> str:
        """`value` as a type that holds null, so that `lead`/`lag` past the end of a window
        partition give null (not a zero of the type)."""
        return value

    def uuid_order(self, uuid: str) -> str:
        """What to sort UUID column `uuid` by so that UUIDs sort as their text does."""
        return uuid

    def median(self, value: str) -> str:
        """The exact median of `value` over a group, nulls ignored."""
        return self.quantile(value, 0.5)

    @abstractmethod
    def exact_sum(self, value: str) -> str:
        """The sum of integer `value` over a group, exact (128 bits) and as a DECIMAL(38, 0):
        a mean made of it and a count is the same on every engine and every run, where a
        float average depends on the order of the additions."""

    @abstractmethod
    def quantile(self, value: str, q: float) -> str:
        """The exact (interpolated) `q` quantile of integer `value` over a group, nulls ignored,
        rounded to 6 decimal places: the exact value has no more places than `q` has (for
        q ≤ 6 places), and the engines' interpolation arithmetic differs in its last bit, so
        the rounded value is the same double on every engine."""

    @abstractmethod
    def try_double(self, text: str) -> str:
        """Text expression `text` as a float, null when it is not a number."""

    @abstractmethod
    def json_text(self, column: str, key: str) -> str:
        """The value at top-level `key` of JSON text `column`, as text (null when absent or
        null): a string as sent, any other value as its JSON text, a whole double without its
        fraction (3.0 as "3", as ClickHouse writes it), the same on every engine."""

    def quote(self, text: str) -> str:
        """A string literal (for time-zone names and the like, never for user input)."""
        return "'" + text.replace("'", "''") + "'"
