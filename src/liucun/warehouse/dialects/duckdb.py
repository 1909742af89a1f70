"""DuckDB's SQL for the dialect seam."""

from __future__ import annotations

from liucun.warehouse.dialects.base import Dialect
from liucun.warehouse.schema import Column

_TYPES = {
    "string": "VARCHAR",
    "uuid": "UUID",
    "timestamp": "TIMESTAMPTZ",
    "int": "BIGINT",
    "float": "DOUBLE",
    "decimal": "DECIMAL(18, 2)",
    "json": "JSON",
}


class DuckDBDialect(Dialect):
    name = "duckdb"
    materialized = "MATERIALIZED"

    def column_type(self, column: Column) -> str:
        return _TYPES[column.logical] + ("" if column.nullable else " NOT NULL")

    def local_date(self, ts: str, tz: str) -> str:
        # timezone(zone, timestamptz) is the wall-clock time in that zone (ICU, DST-aware)
        return f"CAST(timezone({tz}, {ts}) AS DATE)"

    def first_by(self, value: str, order: str) -> str:
        return f"arg_min({value}, {order})"

    def last_by(self, value: str, order: str) -> str:
        return f"arg_max({value}, {order})"

    def first_by_with_nulls(self, value: str, order: str) -> str:
        return f"arg_min_null({value}, {order})"

    def param(self, name: str) -> str:
        return f"${name}"

    def period_start(self, day: str, period: str, week_starts_sunday: bool) -> str:
        if period == "day":
            return f"CAST({day} AS DATE)"
        if period == "month":
            return f"CAST(date_trunc('month', {day}) AS DATE)"
        if week_starts_sunday:  # DuckDB's weeks are ISO weeks, starting on Monday
            return f"CAST(date_trunc('week', CAST({day} AS DATE) + 1) AS DATE) - 1"
        return f"CAST(date_trunc('week', {day}) AS DATE)"

    def periods_between(self, first: str, second: str, period: str) -> str:
        if period == "month":
            return f"date_diff('month', {first}, {second})"
        days = f"date_diff('day', {first}, {second})"
        return f"({days} // 7)" if period == "week" else days

    def add_days(self, day: str, days: str) -> str:
        return f"CAST({day} AS DATE) + CAST({days} AS INTEGER)"

    def epoch_us(self, ts: str) -> str:
        return f"epoch_us({ts})"

    def exact_sum(self, value: str) -> str:
        return f"CAST(sum(CAST({value} AS HUGEINT)) AS DECIMAL(38, 0))"

    def quantile(self, value: str, q: float) -> str:
        return f"round(quantile_cont({value}, {float(q)}), 6)"

    def try_double(self, text: str) -> str:
        return f"TRY_CAST({text} AS DOUBLE)"

    def json_text(self, column: str, key: str) -> str:
        path = self.quote(f'$."{key}"')
        value = f"json_extract({column}, {path})"
        text = f"json_extract_string({value}, '$')"
        # a whole double as ClickHouse writes it: 3.0 → "3" (DuckDB writes "3.0"), so a value
        # reads the same on both engines
        return (
            f"(CASE WHEN json_type({value}) = 'DOUBLE' "
            f"THEN regexp_replace({text}, '\\.0$', '') ELSE {text} END)"
        )
