"""The real PostHog Python SDK, pointed at a live `liucun serve`, delivers its events once each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from posthog import Posthog

from liucun.state.apps import AppCredentials, create_app
from liucun.state.db import open_state
from tests.server_helpers import liucun_env, running_server, server_count


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, AppCredentials]]:
    tmp = tmp_path_factory.mktemp("posthog")
    state_url = f"sqlite:///{tmp / 'state.sqlite'}"
    engine = open_state(state_url)
    creds = create_app(engine, "web shop", "Asia/Shanghai")
    engine.dispose()
    with running_server(liucun_env(tmp, state_url)) as url:
        yield url, creds


def exported(url: str, creds: AppCredentials) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{url}/admin/v1/apps/{creds.app_id}/events/export",
        headers={"Authorization": f"Bearer {creds.admin_token}"},
        timeout=30.0,
    )
    assert r.status_code == 200, r.text
    rows = [orjson.loads(line) for line in r.content.splitlines() if line.strip()]
    assert int(r.headers["x-event-count"]) == len(rows)
    return rows


def count(url: str, creds: AppCredentials) -> int:
    return server_count(url, creds.app_id, creds.admin_token)


def client(url: str, key: str, errors: list[Any], **kw: Any) -> Posthog:
    return Posthog(
        project_api_key=key,
        host=url,
        on_error=lambda error, _batch: errors.append(error),
        max_retries=0,
        enable_local_evaluation=False,
        **kw,
    )


def send_session(ph: Posthog, ids: dict[str, str], when: datetime) -> None:
    """One visitor's session, each event with a fixed uuid (so it can be sent again)."""
    ph.capture(
        "$pageview",
        distinct_id="device-9",
        properties={
            "$current_url": "https://shop.example/items/42?ref=ad",
            "$device_id": "device-9",
        },
        timestamp=when,
        uuid=ids["pageview"],
    )
    ph.capture(
        "$identify",
        distinct_id="user-7",
        properties={"$anon_distinct_id": "device-9"},
        timestamp=when + timedelta(seconds=1),
        uuid=ids["identify"],
    )
    ph.alias(previous_id="user-7", distinct_id="wx-openid-7", uuid=ids["alias"])
    ph.capture(
        "add_to_cart",
        distinct_id="user-7",
        properties={"sku": "A-42", "qty": 2, "tags": ["new", "sale"]},
        timestamp=when + timedelta(seconds=2),
        uuid=ids["cart"],
    )


def test_sdk_events_are_stored_once_each(live: tuple[str, AppCredentials]) -> None:
    url, creds = live
    before = count(url, creds)
    ids = {k: str(uuid.uuid4()) for k in ("pageview", "identify", "alias", "cart")}
    errors: list[Any] = []
    when = datetime.now(UTC) - timedelta(minutes=5)

    sync = client(url, creds.write_key, errors, sync_mode=True)
    send_session(sync, ids, when)
    sync.shutdown()
    assert not errors
    assert count(url, creds) == before + 4

    rows = {r["event_id"]: r for r in exported(url, creds)}
    assert set(ids.values()) <= set(rows)
    page = rows[ids["pageview"]]
    assert page["event"] == "page_view" and page["page"] == "/items/42"
    assert page["anonymous_id"] == "device-9" and "user_id" not in page
    ident = rows[ids["identify"]]
    assert ident["event"] == "identify"
    assert (ident["user_id"], ident["anonymous_id"]) == ("user-7", "device-9")
    alias = rows[ids["alias"]]
    assert alias["event"] == "alias" and alias["user_id"] == "user-7"
    assert alias["properties"]["alias"] == "wx-openid-7"
    cart = rows[ids["cart"]]
    assert cart["event"] == "add_to_cart" and cart["user_id"] == "user-7"
    assert cart["properties"]["sku"] == "A-42" and cart["properties"]["qty"] == 2
    assert cart["properties"]["tags"] == ["new", "sale"]

    # the same events again, batched and gzipped this time (a retry), with one new event in
    # the same request to show it was delivered: only that one is stored
    batched = client(url, creds.write_key, errors, gzip=True, flush_at=100)
    send_session(batched, ids, when)
    extra = batched.capture("checkout", distinct_id="user-7", uuid=str(uuid.uuid4()))
    batched.flush()
    batched.shutdown()
    assert not errors
    assert count(url, creds) == before + 5
    all_ids = [r["event_id"] for r in exported(url, creds)]
    assert len(all_ids) == len(set(all_ids)) and extra in all_ids


def test_sdk_batch_without_uuids_and_retry(live: tuple[str, AppCredentials]) -> None:
    url, creds = live
    before = count(url, creds)
    errors: list[Any] = []
    ph = client(url, creds.write_key, errors, flush_at=50)
    sent = [
        ph.capture("level_up", distinct_id=f"user-{i % 5}", properties={"level": i})
        for i in range(30)
    ]
    ph.flush()
    ph.shutdown()
    assert not errors
    assert all(sent) and len(set(sent)) == 30  # the SDK's own uuids
    assert count(url, creds) == before + 30
    rows = [r for r in exported(url, creds) if r["event"] == "level_up"]
    assert sorted(r["properties"]["level"] for r in rows) == list(range(30))
    assert {r["event_id"] for r in rows} == set(sent)
    assert {r["user_id"] for r in rows} == {f"user-{i}" for i in range(5)}

    # an SDK retry re-posts the same body to /batch/: duplicates, not new events
    body = {
        "api_key": creds.write_key,
        "batch": [
            {"event": "level_up", "distinct_id": "user-0", "uuid": u, "properties": {}}
            for u in sent[:10]
        ],
    }
    r = httpx.post(f"{url}/batch/", content=orjson.dumps(body), timeout=30.0)
    assert r.status_code == 200, r.text
    assert r.json()["new"] == 0 and r.json()["duplicates"] == 10
    assert count(url, creds) == before + 30
