"""Bulk reads and writes for set-based send decisions, through the database driver.

SQLAlchemy Core spends more time building parameters than the database spends on a 100 000-
row executemany; these helpers hand plain tuples to the driver instead. Values are converted
as SQLAlchemy would store them (on SQLite: times as naive UTC text, booleans as 0/1), so the
rows read back the same through the tables in state/tables.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

# values per IN list: well under SQLite's (32 766) and PostgreSQL's (65 535) parameter limits
IN_CHUNK = 5_000


def is_sqlite(conn: sa.Connection) -> bool:
    return conn.dialect.name == "sqlite"


def mark(conn: sa.Connection) -> str:
    """The driver's parameter marker."""
    return "?" if is_sqlite(conn) else "%s"


def for_update(conn: sa.Connection) -> str:
    # SQLite has no row locks: a write transaction (BEGIN IMMEDIATE) holds the whole file
    return "" if is_sqlite(conn) else " FOR UPDATE"


def db_value(conn: sa.Connection, value: Any) -> Any:
    """`value` as the driver should get it for this store."""
    if is_sqlite(conn):
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, bool):
            return int(value)
    return value


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def select_in(
    conn: sa.Connection,
    sql: str,
    leading: Sequence[Any],
    values: Sequence[Any],
    trailing: str = "",
) -> list[tuple[Any, ...]]:
    """Rows of `sql` — whose last condition is `IN ({in})` — for every chunk of `values`,
    in chunk order; `leading` parameters come before the IN list, `trailing` SQL after. On
    PostgreSQL the list is one array parameter (`= ANY(%s)`): thousands of markers cost the
    driver more to parse than the server to run."""
    if not values:
        return []
    if not is_sqlite(conn):
        text = sql.replace("IN ({in})", "= ANY(%s)") + trailing
        return [tuple(r) for r in conn.exec_driver_sql(text, (*leading, list(values))).all()]
    rows: list[tuple[Any, ...]] = []
    for part in chunks(values):
        text = sql.format(**{"in": ", ".join(["?"] * len(part))}) + trailing
        rows += conn.exec_driver_sql(text, (*leading, *part)).all()
    return [tuple(r) for r in rows]


def execute_many(
    conn: sa.Connection, sql: str, rows: Sequence[Sequence[Any]], convert: bool = True
) -> None:
    """`sql` (with `{m}` for each parameter marker) once per row; the values converted for
    the store unless the caller did (`convert=False`, with `db_value`)."""
    if not rows:
        return
    text = sql.replace("{m}", mark(conn))
    if convert and is_sqlite(conn):
        rows = [tuple(db_value(conn, v) for v in row) for row in rows]
    conn.exec_driver_sql(text, list(rows))


def insert_rows(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert `rows` (values already converted with `db_value`): an executemany on SQLite,
    COPY on PostgreSQL (a unique-key clash fails it as an INSERT would)."""
    if not rows:
        return
    if is_sqlite(conn):
        marks = ", ".join(["?"] * len(columns))
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(rows)
        )
        return
    import psycopg

    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor:  # type: ignore[attr-defined]
        try:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation as exc:
            raise sa.exc.IntegrityError("COPY", None, exc) from exc


def update_many(
    conn: sa.Connection,
    table: str,
    sets: Sequence[str],
    keys: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """UPDATE `table` SET `sets` WHERE `keys` match, once per row (values: the `sets` then
    the `keys`, typed as PostgreSQL `types`, text and integers only). On PostgreSQL one
    statement joins the rows as arrays (`unnest`), instead of a round trip a row."""
    if not rows:
        return
    if is_sqlite(conn):
        assign = ", ".join(f"{c} = ?" for c in sets)
        where = " AND ".join(f"{c} = ?" for c in keys)
        conn.exec_driver_sql(f"UPDATE {table} SET {assign} WHERE {where}", list(rows))
        return
    columns = [*sets, *keys]
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    assign = ", ".join(f"{c} = v.{c}" for c in sets)
    where = " AND ".join(f"t.{c} = v.{c}" for c in keys)
    sql = (
        f"UPDATE {table} AS t SET {assign} FROM unnest({arrays}) AS v({', '.join(columns)}) "
        f"WHERE {where}"
    )
    conn.exec_driver_sql(sql, tuple([list(col) for col in zip(*rows, strict=True)]))
