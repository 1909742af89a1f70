"""SQL dialects of the event stores: every engine-specific function lives in one of these."""

from liucun.warehouse.dialects.base import Dialect
from liucun.warehouse.dialects.clickhouse import ClickHouseDialect
from liucun.warehouse.dialects.duckdb import DuckDBDialect

__all__ = ["ClickHouseDialect", "Dialect", "DuckDBDialect"]
