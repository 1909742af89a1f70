"""A test server for the loyalty API: the shop app, its playbook, a signing key, a clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from liucun.api.app import create_app
from liucun.config import Settings
from liucun.loyalty.pending import drain, queue_state
from liucun.loyalty.tokens import SigningKey, create_signing_key, mint_user_token
from liucun.playbook.store import apply_playbook
from liucun.state.apps import AppCredentials
from liucun.state.apps import create_app as create_tenant


@dataclass
class LoyaltyServer:
    client: TestClient
    runtime: Any
    creds: AppCredentials
    key: SigningKey
    now: datetime

    def token(self, user: str, now: datetime | None = None, ttl: int = 3600) -> str:
        assert self.key.secret is not None
        at = now or self.now
        return mint_user_token(self.creds.app_id, user, self.key.key_id, self.key.secret, at, ttl)

    def user_headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


def settle(runtime: Any, timeout: float = 60.0) -> None:
    """Wait until the reactions queue is empty, draining it here too (the server's drainer
    may hold some of it)."""
    deadline = time.monotonic() + timeout
    while queue_state(runtime.state).batches:
        drain(runtime.state, runtime.programme_by_id, runtime.clock)
        assert time.monotonic() < deadline, queue_state(runtime.state)
        time.sleep(0.02)


@contextmanager
def loyalty_server(
    tmp_path: Path, state_url: str, now: datetime, playbook: str | None = None
) -> Iterator[LoyaltyServer]:
    """A server on `state_url` whose clock stands at `now`, with the app `shop`
    (Asia/Shanghai), `playbook` in force if given, and a signing key."""
    settings = Settings(
        data_dir=tmp_path / "data", state_store=state_url, daily_at="off", ingest_workers=0
    )
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        runtime.clock = lambda: now
        creds = create_tenant(runtime.state, "shop", "Asia/Shanghai")
        if playbook is not None:
            apply_playbook(runtime.state, creds.app_id, playbook)
        key = create_signing_key(runtime.state, creds.app_id, now)
        yield LoyaltyServer(client, runtime, creds, key, now)
