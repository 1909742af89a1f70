"""Opening the state store: SQLite in WAL mode by default, PostgreSQL by URL, migrated to head."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# the PostgreSQL advisory lock that servers starting together take to migrate one at a time
MIGRATION_LOCK = 0x6C69_7563_756E  # "liucun"


def engine_url(url: str) -> str:
    """Our URLs name the database (`postgresql://`); SQLAlchemy also wants the driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    # WAL lets the dashboard read while a writer commits; FULL sync makes a commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # SQLAlchemy, not the driver, begins transactions (see `_sqlite_begin`)
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]


def _sqlite_begin(conn: sa.Connection) -> None:
    # A write transaction takes SQLite's write lock at BEGIN: one that read first and wrote
    # later could not get it once another writer had committed (SQLITE_BUSY, not waited for).
    immediate = conn.get_execution_options().get(WRITE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# the execution option that marks a connection's transactions as writes (`write_transaction`)
WRITE_OPTION = "liucun_write"


def create_state_engine(url: str) -> sa.Engine:
    """An engine for the state store at `url`; SQLite files get WAL mode and a busy timeout."""
    full = engine_url(url)
    if full.startswith("sqlite"):
        path = full.split("///", 1)[1] if "///" in full else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(full)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(full, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its start, so that
    read-then-write sequences in it run one at a time; on PostgreSQL writers lock rows."""
    if engine.dialect.name != "sqlite":
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            yield conn
        return
    # SQLite has one writer at a time: threads of this process queue here and wake at once,
    # instead of in SQLite's busy handler, which sleeps up to 100 ms between tries
    with (
        _sqlite_writers(engine),
        engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
        conn.begin(),
    ):
        yield conn


_WRITERS: dict[int, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def _sqlite_writers(engine: sa.Engine) -> threading.RLock:
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(id(engine.pool), threading.RLock())


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the state store's schema to `revision` with Alembic."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # held to the end of the transaction: a second server waits, then finds the
            # schema at head, instead of creating the same tables and failing
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_state(url: str) -> sa.Engine:
    """The migrated state store at `url`."""
    engine = create_state_engine(url)
    migrate(engine)
    return engine
