"""Opening the state store: SQLite in WAL mode by default, PostgreSQL by URL, migrated to head."""

from __future__ import annotations

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


def create_state_engine(url: str) -> sa.Engine:
    """An engine for the state store at `url`; SQLite files get WAL mode and a busy timeout."""
    full = engine_url(url)
    if full.startswith("sqlite"):
        path = full.split("///", 1)[1] if "///" in full else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(full)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(full, pool_pre_ping=True)


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
