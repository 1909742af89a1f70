"""Each dialect's SQL, run on its own engine, against answers worked out in Python.

DuckDB runs in-process; ClickHouse runs in-process as chdb (the engine, not a mock). Literal
rows are spelled per engine here; everything under test comes from the dialect.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import chdb.session
import duckdb
import pyarrow as pa
import pytest

from liucun.warehouse.dialects import ClickHouseDialect, Dialect, DuckDBDialect

Run = Callable[[str], list[dict[str, Any]]]


def _duckdb() -> tuple[Dialect, Run, Callable[[datetime], str]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")

    def run(sql: str) -> list[dict[str, Any]]:
        return con.sql(sql).to_arrow_table().to_pylist()

    return DuckDBDialect(), run, lambda t: f"TIMESTAMPTZ '{t.isoformat()}'"


def _clickhouse() -> tuple[Dialect, Run, Callable[[datetime], str]]:
    session = chdb.session.Session()

    def run(sql: str) -> list[dict[str, Any]]:
        data = session.query(sql, "Arrow").bytes()
        return pa.ipc.open_file(pa.py_buffer(data)).read_all().to_pylist()

    def ts(t: datetime) -> str:
        text = t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"toDateTime64('{text}', 6, 'UTC')"

    return ClickHouseDialect(), run, ts


@pytest.fixture(params=["duckdb", "clickhouse"], scope="module")
def engine(request: pytest.FixtureRequest) -> tuple[Dialect, Run, Callable[[datetime], str]]:
    return _duckdb() if request.param == "duckdb" else _clickhouse()


def one(run: Run, sql: str) -> Any:
    return run(f"SELECT {sql} AS v")[0]["v"]


def date_literal(d: date) -> str:
    return f"CAST('{d.isoformat()}' AS DATE)"


INSTANTS = [
    # around Shanghai's midnight
    datetime(2026, 10, 31, 15, 59, 59, 999_999, UTC),
    datetime(2026, 10, 31, 16, 0, tzinfo=UTC),
    # around New York's switches to daylight time (2026-03-08) and back (2026-11-01)
    datetime(2026, 3, 8, 4, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 3, 59, 59, tzinfo=UTC),
    datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    datetime(2026, 11, 2, 4, 59, 59, tzinfo=UTC),
    datetime(2026, 11, 2, 5, 0, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York"])
def test_local_date_is_the_calendar_day_in_the_zone(engine: Any, zone: str) -> None:
    d, run, ts = engine
    for instant in INSTANTS:
        got = one(run, d.local_date(ts(instant), d.quote(zone)))
        assert got == instant.astimezone(ZoneInfo(zone)).date(), instant


DAYS = [date(2026, 2, 28) + timedelta(days=i) for i in range(0, 400, 13)] + [
    date(2026, 11, 29),  # a Sunday
    date(2026, 11, 30),  # a Monday
    date(2024, 2, 29),
]


def period_start_reference(day: date, period: str, sunday: bool) -> date:
    if period == "day":
        return day
    if period == "month":
        return day.replace(day=1)
    back = (day.weekday() + 1) % 7 if sunday else day.weekday()
    return day - timedelta(days=back)


@pytest.mark.parametrize(
    ("period", "sunday"), [("day", False), ("week", False), ("week", True), ("month", False)]
)
def test_period_start_and_periods_between(engine: Any, period: str, sunday: bool) -> None:
    d, run, _ = engine
    for day in DAYS:
        start = period_start_reference(day, period, sunday)
        assert one(run, d.period_start(date_literal(day), period, sunday)) == start, day
    first = period_start_reference(DAYS[0], period, sunday)
    for day in DAYS:
        later = period_start_reference(day, period, sunday)
        if period == "month":
            want = (later.year - first.year) * 12 + later.month - first.month
        else:
            want = (later - first).days // (7 if period == "week" else 1)
        got = one(run, d.periods_between(date_literal(first), date_literal(later), period))
        assert got == want, (first, later)


def test_add_days_and_epoch_microseconds(engine: Any) -> None:
    d, run, ts = engine
    for day in DAYS:
        for n in (-31, -1, 0, 1, 29):
            assert one(run, d.add_days(date_literal(day), str(n))) == day + timedelta(days=n)
    for instant in INSTANTS:
        want = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        assert one(run, d.epoch_us(ts(instant))) == want


def rows(values: list[tuple[Any, ...]], names: list[str]) -> str:
    """A subquery of literal rows (NULL spelled out)."""

    def lit(v: Any) -> str:
        if v is None:
            return "NULL"
        return f"'{v}'" if isinstance(v, str) else str(v)

    selects = [
        "SELECT " + ", ".join(f"{lit(v)} AS {n}" for v, n in zip(row, names, strict=True))
        for row in values
    ]
    return "(" + " UNION ALL ".join(selects) + ")"


def test_quantiles_interpolate_and_skip_nulls(engine: Any) -> None:
    d, run, _ = engine
    table = rows([(1,), (2,), (None,), (3,), (4,), (10,)], ["x"])
    # linear interpolation between closest ranks over 1, 2, 3, 4, 10 (nulls left out), exact
    # to the last bit: the double nearest the exact value
    for q, want in ((0.5, 3.0), (0.9, 7.6), (0.0, 1.0), (1.0, 10.0), (0.25, 2.0), (0.37, 2.48)):
        got = run(f"SELECT {d.quantile('x', q)} AS v FROM {table} t")[0]["v"]
        assert float(got) == want, q
    assert float(run(f"SELECT {d.median('x')} AS v FROM {table} t")[0]["v"]) == 3.0
    # where plain interpolation misses the last bit (42435.40000000001 on one engine)
    big = rows([(v,) for v in (41_000, 42_435, 42_436, 42_439, 50_000, 42_000)], ["x"])
    for q in (0.9, 0.55, 0.123456):
        got = run(f"SELECT {d.quantile('x', q)} AS v FROM {big} t")[0]["v"]
        ordered = sorted((41_000, 42_435, 42_436, 42_439, 50_000, 42_000))
        h = Fraction(len(ordered) - 1) * Fraction(str(q))
        lo = int(h)
        exact = ordered[lo] + (h - lo) * (ordered[min(lo + 1, 5)] - ordered[lo])
        assert float(got) == float(exact), q


def test_first_and_last_by(engine: Any) -> None:
    d, run, _ = engine
    table = rows([(None, 1, 5), ("b", 2, 1), ("c", 3, 1), ("d", 3, 0)], ["v", "a", "b"])
    got = run(
        f"SELECT {d.first_by('v', 'a')} AS first, "
        f"{d.first_by_with_nulls('v', 'a')} AS first_null, "
        f"{d.last_by('v', '(a, b)')} AS last FROM {table} t"
    )[0]
    # first_by skips the null value; with nulls the first row's null is the answer; the last
    # by (a, b) is the larger b among the rows of the largest a
    assert got == {"first": "b", "first_null": None, "last": "c"}


def test_try_double_and_json_text(engine: Any) -> None:
    d, run, _ = engine
    for text, want in (("1.5", 1.5), ("-2", -2.0), ("x", None), ("", None)):
        assert one(run, d.try_double(d.quote(text))) == want, text
    doc = d.quote(
        '{"a": "x y", "n": 3, "z": null, "t": true, "o": {"k": 1}, "w": 3.0, "f": 2.50, '
        '"e": 1e20, "s": "3.0", "m": -0.0}'
    )
    # whole doubles read as ClickHouse writes them, a string as it was sent
    answers = {
        "a": "x y",
        "n": "3",
        "z": None,
        "t": "true",
        "missing": None,
        "w": "3",
        "f": "2.5",
        "e": "100000000000000000000",
        "s": "3.0",
        "m": "-0",
    }
    for key, want in answers.items():
        assert one(run, d.json_text(doc, key)) == want, key


def test_quote_keeps_every_character(engine: Any) -> None:
    d, run, _ = engine
    for text in ("Asia/Shanghai", "it's", "back\\slash", "引号'和\\"):
        assert one(run, d.quote(text)) == text


def test_exact_sum_goes_past_64_bits_and_keeps_every_unit(engine: Any) -> None:
    d, run, _ = engine
    big = 2**62 + 1
    table = rows([(big,), (big,), (big,), (None,), (-1,)], ["x"])
    got = run(f"SELECT {d.exact_sum('x')} AS v FROM {table} t")[0]["v"]
    assert int(got) == 3 * big - 1


def test_uuids_sort_as_their_text(engine: Any) -> None:
    d, run, _ = engine
    ids = [str(uuid.UUID(int=random.Random(7).getrandbits(128) ^ (i << 64))) for i in range(300)]
    cast = "toUUID(s)" if d.name == "clickhouse" else "CAST(s AS UUID)"
    values = " UNION ALL ".join(f"SELECT '{i}' AS s" for i in ids)
    got = run(
        f"SELECT CAST(u AS VARCHAR) AS s FROM (SELECT {cast} AS u FROM ({values}) t) v "
        f"ORDER BY {d.uuid_order('u')}"
    )
    assert [r["s"] for r in got] == sorted(ids)
