"""Apps and keys on both state stores: creation, look-up by name or id, token checks."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from liucun.state.apps import (
    AppError,
    app_by_admin_token,
    app_by_write_key,
    create_app,
    find_app,
    list_apps,
)
from liucun.state.db import open_state


def test_create_and_find(state_url: str) -> None:
    engine = open_state(state_url)
    creds = create_app(engine, "coffee shop", "Asia/Shanghai")
    assert creds.write_key.startswith("wk_") and creds.admin_token.startswith("at_")
    assert find_app(engine, "coffee shop").app_id == creds.app_id
    assert find_app(engine, creds.app_id).name == "coffee shop"
    assert app_by_write_key(engine, creds.write_key).app_id == creds.app_id  # type: ignore[union-attr]
    assert app_by_admin_token(engine, creds.admin_token).app_id == creds.app_id  # type: ignore[union-attr]
    assert app_by_admin_token(engine, creds.write_key) is None
    assert app_by_write_key(engine, "wk_nope") is None


def test_admin_token_is_not_stored_in_clear(state_url: str) -> None:
    engine = open_state(state_url)
    creds = create_app(engine, "a", "UTC")
    with engine.connect() as conn:
        dumped = " ".join(str(v) for row in conn.exec_driver_sql("SELECT * FROM apps") for v in row)
    assert creds.admin_token not in dumped


def test_duplicate_and_bad_names(state_url: str) -> None:
    engine = open_state(state_url)
    create_app(engine, "shop", "UTC")
    with pytest.raises(AppError, match="already exists"):
        create_app(engine, "shop", "UTC")
    with pytest.raises(AppError, match="invalid"):
        create_app(engine, " shop", "UTC")
    with pytest.raises(ValueError, match="time zone"):
        create_app(engine, "other", "Moon/Base")
    with pytest.raises(AppError, match="no app named"):
        find_app(engine, "missing")


def test_concurrent_creates_of_one_name_make_one_app(state_url: str) -> None:
    engine = open_state(state_url)

    def attempt(_: int) -> bool:
        try:
            create_app(engine, "race", "UTC")
            return True
        except AppError:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1
    assert [a.name for a in list_apps(engine)] == ["race"]


def test_migrations_are_idempotent(state_url: str) -> None:
    open_state(state_url)
    engine = open_state(state_url)  # a second start migrates nothing and keeps data
    create_app(engine, "x", "UTC")
    assert len(list_apps(open_state(state_url))) == 1


def test_servers_starting_together_migrate_one_at_a_time(pg_url: str) -> None:
    """Several processes opening an empty PostgreSQL state store at once all succeed."""
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []
    engines: list[sa.Engine] = []

    def start() -> None:
        barrier.wait()
        try:
            engines.append(open_state(pg_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    create_app(engines[0], "shop", "Asia/Shanghai")
    assert [a.name for a in list_apps(engines[-1])] == ["shop"]
    for engine in engines:
        engine.dispose()
