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

    def column_type(self, column: Column) -> str:
        return _TYPES[column.logical] + ("" if column.nullable else " NOT NULL")

    def local_date(self, ts: str, tz: str) -> str:
        # timezone(zone, timestamptz) is the wall-clock time in that zone (ICU, DST-aware)
        return f"CAST(timezone({tz}, {ts}) AS DATE)"

    def first_by(self, value: str, order: str) -> str:
        return f"arg_min({value}, {order})"

    def param(self, name: str) -> str:
        return f"${name}"
