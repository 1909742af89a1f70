"""Locks that several server processes take in the shared state store (PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import sqlalchemy as sa


class AppWriteLock(Protocol):
    def __call__(self, app_ids: Iterable[str]) -> AbstractContextManager[None]:
        """Held while the events of these apps are checked for duplicates and written."""
        ...


def _lock_key(app_id: str) -> int:
    digest = hashlib.blake2b(b"liucun-app-write:" + app_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


_PROCESS_LOCK = threading.Lock()


@contextmanager
def _hold_process_lock(app_ids: Iterable[str]) -> Iterator[None]:
    with _PROCESS_LOCK:
        yield


def process_write_lock() -> AppWriteLock:
    """This process's writers (of every store) in turn: enough where one process writes."""
    return _hold_process_lock


def postgres_write_lock(engine: sa.Engine) -> AppWriteLock:
    """Every server's writers of an app in turn, through PostgreSQL advisory locks (one per
    app, taken in key order so that two writers of the same apps cannot deadlock)."""

    @contextmanager
    def hold(app_ids: Iterable[str]) -> Iterator[None]:
        keys = sorted({_lock_key(a) for a in app_ids})
        with engine.connect() as conn, conn.begin():
            for key in keys:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            yield

    return hold


def app_write_lock(state: sa.Engine | None) -> AppWriteLock:
    """The write lock that the servers sharing `state` agree on."""
    if state is not None and state.dialect.name == "postgresql":
        return postgres_write_lock(state)
    return process_write_lock()
