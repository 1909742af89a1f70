"""What a running server holds: settings, the two stores, the event writer, app look-ups."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from liucun.api.workers import parse_pool, worker_count
from liucun.config import Settings
from liucun.events.ingest import Limits
from liucun.loyalty.drainer import ReactionDrainer
from liucun.loyalty.pending import queue_of
from liucun.loyalty.programme import Programme, programme_of
from liucun.state.apps import App, AppError, app_by_admin_token, app_by_write_key, find_app
from liucun.state.db import open_state
from liucun.state.locks import app_write_lock
from liucun.warehouse.store import EventStore, open_event_store
from liucun.warehouse.writer import GroupCommitWriter

T = TypeVar("T")
# A key seen valid is trusted this long without asking the state store again.
KEY_CACHE_SECONDS = 30.0
# A loyalty request reads the playbook in force at most this old (a new revision applies
# within this many seconds on every server).
PROGRAMME_CACHE_SECONDS = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    state: sa.Engine
    store: EventStore
    writer: GroupCommitWriter
    # Grants admin rights to whoever can read the data directory (the local CLI).
    control_token: str = field(default_factory=lambda: "ct_" + secrets.token_urlsafe(32))
    # what loyalty requests take as "now" (tests move it)
    clock: Callable[[], datetime] = utc_now
    reactions: ReactionDrainer | None = None
    _keys: dict[str, tuple[float, App]] = field(default_factory=dict)
    _cached: dict[tuple[str, str], tuple[float, Any]] = field(default_factory=dict)

    def cached(self, kind: str, key: str, ttl: float, load: Callable[[], T]) -> T:
        """`load()`, remembered under (`kind`, `key`) for `ttl` seconds."""
        hit = self._cached.get((kind, key))
        if hit and time.monotonic() - hit[0] < ttl:
            value: T = hit[1]
            return value
        value = load()
        self._cached[(kind, key)] = (time.monotonic(), value)
        return value

    @property
    def limits(self) -> Limits:
        return Limits(self.settings.max_batch_events, self.settings.max_body_bytes)

    def start_workers(self) -> None:
        """Start the body-checking processes now, not on the first request."""
        workers = worker_count(self.settings.ingest_workers)
        if workers:
            parse_pool(workers)

    def start_reactions(self) -> None:
        """Start draining the loyalty reactions queue in the background."""
        if self.reactions is None:
            self.reactions = ReactionDrainer(self.state, self.programme_by_id, lambda: self.clock())
            self.reactions.start()

    def app_by_id(self, app_id: str) -> App | None:
        def load() -> App | None:
            try:
                return find_app(self.state, app_id)
            except AppError:
                return None

        return self.cached("app", app_id, KEY_CACHE_SECONDS, load)

    def programme(self, app: App) -> Programme:
        """The app's loyalty programme under the playbook in force (at most a few seconds old)."""
        return self.cached(
            "programme", app.app_id, PROGRAMME_CACHE_SECONDS, lambda: programme_of(self.state, app)
        )

    def programme_by_id(self, app_id: str) -> Programme | None:
        app = self.app_by_id(app_id)
        return None if app is None else self.programme(app)

    async def parse(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a body parser in the worker processes (or here, with `ingest_workers = 0`)."""
        workers = worker_count(self.settings.ingest_workers)
        if workers == 0:
            return fn(*args)
        # the writer holds its next commit open for a request being checked
        with self.writer.expecting():
            pool = parse_pool(workers)
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        state = open_state(settings.state_store_url)
        store = open_event_store(settings.event_store_url, write_lock=app_write_lock(state))
        return cls(settings, state, store, GroupCommitWriter(store))

    def close(self) -> None:
        if self.reactions is not None:
            self.reactions.stop()
        self.writer.close()
        self.store.close()
        queue_of(self.state).dispose()
        self.state.dispose()

    def app_for_write_key(self, key: str) -> App | None:
        hit = self._keys.get(key)
        if hit and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
            return hit[1]
        app = app_by_write_key(self.state, key)
        if app is not None:
            self._keys[key] = (time.monotonic(), app)
        return app

    def app_for_backend(self, token: str) -> App | None:
        """The app whose admin token is `token` (its backend sending trusted events); only a
        hit is remembered, so random tokens fill no cache."""
        hit = self._cached.get(("backend", token))
        if hit and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
            found: App = hit[1]
            return found
        app = app_by_admin_token(self.state, token)
        if app is not None:
            self._cached[("backend", token)] = (time.monotonic(), app)
        return app

    def is_server_admin(self, token: str) -> bool:
        admin = self.settings.admin_token
        return secrets.compare_digest(token, self.control_token) or bool(
            admin and secrets.compare_digest(token, admin)
        )

    def app_for_admin(self, token: str, app_ref: str) -> App | None:
        """The app `app_ref` if `token` may administer it (server token or the app's own)."""
        if self.is_server_admin(token):
            return find_app(self.state, app_ref)
        app = app_by_admin_token(self.state, token)
        if app is not None and app_ref in (app.app_id, app.name):
            return app
        return None
