"""Shared fixtures: every state-store test runs on SQLite and on PostgreSQL.

PostgreSQL is expected on 127.0.0.1:5432 with trust auth (as on the dev machines and CI);
`LIUCUN_TEST_PG` overrides the server URL. It is never skipped: if it is down, tests fail.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from liucun.config import Settings

PG_SERVER = os.environ.get("LIUCUN_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _pg_admin() -> sa.Engine:
    return sa.create_engine(
        PG_SERVER.replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres",
        isolation_level="AUTOCOMMIT",
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"liucun_test_{secrets.token_hex(6)}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty state store, once per supported engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(tmp_path: Path, state_url: str) -> Settings:
    """Settings with a private data directory and the parametrised state store."""
    # no daily run in the background of a test server: tests run the jobs they check
    return Settings(data_dir=tmp_path / "data", state_store=state_url, daily_at="off")


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def engine(state_url: str) -> Iterator[sa.Engine]:
    """The migrated state store at `state_url`, for one test function (hypothesis examples in
    it share the store, each with an app of its own)."""
    from liucun.state.db import open_state

    eng = open_state(state_url)
    yield eng
    eng.dispose()
