"""POST /v1/batch through the real app: validation per event, limits, keys, dedup, durability."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from liucun.api.app import create_app
from liucun.config import Settings
from liucun.state.apps import AppCredentials
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state
from liucun.warehouse.store import open_event_store
from tests.api_helpers import event


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def shop(settings: Settings) -> AppCredentials:
    return create_tenant(open_state(settings.state_store_url), "shop", "Asia/Shanghai")


@pytest.fixture
def other(settings: Settings) -> AppCredentials:
    return create_tenant(open_state(settings.state_store_url), "other", "UTC")


def post(client: TestClient, key: str | None, body: object, **kw: object) -> object:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/batch", content=orjson.dumps(body), headers=headers, **kw)


def stored_count(client: TestClient, app_id: str) -> int:
    return client.app.state.runtime.store.count(app_id)  # type: ignore[attr-defined]


def test_good_batch_is_stored(client: TestClient, shop: AppCredentials) -> None:
    r = post(client, shop.write_key, {"batch": [event(), event("app_open")]})
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 2, "accepted": 2, "new": 2, "duplicates": 0, "rejected": []}
    assert stored_count(client, shop.app_id) == 2


def test_bad_events_are_reported_and_good_ones_kept(
    client: TestClient, shop: AppCredentials
) -> None:
    batch = [
        event(),
        {"event": "page_view", "anonymous_id": "d"},  # no event_id
        event(ts="1999-12-31T23:59:59Z"),
        event(ts="2999-01-01T00:00:00Z"),
        event("order_paid", amount="12.345", properties={"order_id": "o1"}),
        event(user_id="x" * 201),
        event(x="left"),
        event("page_leave", page="p"),  # no duration_ms
        event(anonymous_id=None),  # neither user nor device
        event(platform="symbian"),
        event("order_paid", amount=19.99, properties={"order_id": "o2"}),
    ]
    r = post(client, shop.write_key, batch)
    assert r.status_code == 200, r.text
    body = r.json()
    reasons = {item["index"]: item["reason"] for item in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7, 8, 9}
    assert "event_id" in reasons[1]
    assert "before 2000" in reasons[2]
    assert "23 hours" in reasons[3]
    assert "decimal places" in reasons[4]
    assert "user_id" in reasons[5] and "200" in reasons[5]
    assert "x:" in reasons[6]
    assert "duration_ms" in reasons[7]
    assert "user_id or an anonymous_id" in reasons[8]
    assert "platform" in reasons[9]
    assert body["accepted"] == 2 and body["new"] == 2
    rows = client.app.state.runtime.store.query(  # type: ignore[attr-defined]
        "SELECT amount FROM events WHERE event = 'order_paid'"
    ).to_pylist()
    assert [str(r["amount"]) for r in rows] == ["19.99"]


def test_all_rejected_answers_400(client: TestClient, shop: AppCredentials) -> None:
    r = post(client, shop.write_key, [{"event": ""}])
    assert r.status_code == 400
    assert r.json()["detail"]["rejected"][0]["index"] == 0


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"events": []}', 400, "JSON array"),
        (b'"hello"', 400, "JSON array"),
    ],
)
def test_malformed_bodies(
    client: TestClient, shop: AppCredentials, body: bytes, status: int, text: str
) -> None:
    r = client.post(
        "/v1/batch", content=body, headers={"Authorization": f"Bearer {shop.write_key}"}
    )
    assert r.status_code == status and text in r.text


def test_keys(client: TestClient, shop: AppCredentials, other: AppCredentials) -> None:
    assert post(client, None, [event()]).status_code == 401
    assert post(client, "wk_wrong", [event()]).status_code == 401
    # a write key only ever writes to its own app, whatever the body says
    r = post(client, other.write_key, {"batch": [event()], "api_key": shop.write_key})
    assert r.status_code == 200
    assert stored_count(client, shop.app_id) == 0 and stored_count(client, other.app_id) == 1
    # the admin token is not a write key
    assert post(client, shop.admin_token, [event()]).status_code == 401
    # app_id is not a field a client may set
    r = post(client, other.write_key, [event(app_id=shop.app_id)])
    assert r.status_code == 400 and "app_id" in r.text
    assert stored_count(client, shop.app_id) == 0


def test_same_event_in_two_apps_is_two_events(
    client: TestClient, shop: AppCredentials, other: AppCredentials
) -> None:
    e = event()
    assert post(client, shop.write_key, [e]).json()["new"] == 1
    assert post(client, other.write_key, [e]).json()["new"] == 1


def test_retries_are_idempotent(client: TestClient, shop: AppCredentials) -> None:
    batch = [event() for _ in range(5)]
    first = post(client, shop.write_key, batch + batch[:2]).json()
    assert first["accepted"] == 7 and first["new"] == 5
    again = post(client, shop.write_key, batch).json()
    assert again["new"] == 0 and again["duplicates"] == 5
    assert stored_count(client, shop.app_id) == 5


def test_gzip_body(client: TestClient, shop: AppCredentials) -> None:
    body = gzip.compress(orjson.dumps([event(), event()]))
    r = client.post(
        "/v1/batch",
        content=body,
        headers={"Authorization": f"Bearer {shop.write_key}", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200 and r.json()["new"] == 2


def test_gzip_bomb_is_refused(client: TestClient, shop: AppCredentials) -> None:
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    r = client.post(
        "/v1/batch", content=bomb, headers={"Authorization": f"Bearer {shop.write_key}"}
    )
    assert r.status_code == 413 and "expands" in r.text
    assert stored_count(client, shop.app_id) == 0


def test_oversize_batch_and_body(settings: Settings, shop: AppCredentials) -> None:
    small = settings.model_copy(update={"max_batch_events": 3, "max_body_bytes": 4096})
    with TestClient(create_app(small)) as c:
        r = post(c, shop.write_key, [event() for _ in range(4)])
        assert r.status_code == 413 and "limit is 3" in r.text
        r = post(c, shop.write_key, [event(properties={"pad": "x" * 5000})])
        assert r.status_code == 413 and "4096" in r.text
        assert stored_count(c, shop.app_id) == 0


def test_rejects_leave_earlier_events_untouched(client: TestClient, shop: AppCredentials) -> None:
    good = [event() for _ in range(3)]
    post(client, shop.write_key, good)
    client.post(
        "/v1/batch", content=b"garbage", headers={"Authorization": f"Bearer {shop.write_key}"}
    )
    post(client, shop.write_key, [{"event_id": good[0]["event_id"], "event": 5}])
    rows = client.app.state.runtime.store.query(  # type: ignore[attr-defined]
        "SELECT CAST(event_id AS VARCHAR) AS id, event FROM events ORDER BY 1"
    ).to_pylist()
    assert rows == sorted(
        ({"id": e["event_id"], "event": "page_view"} for e in good), key=lambda r: r["id"]
    )


def test_clock_skew_is_corrected(client: TestClient, shop: AppCredentials) -> None:
    # the client's clock is 5 hours fast: it says the event happened 10 s before sending
    e = event(ts="2030-01-01T10:00:00Z")
    r = post(client, shop.write_key, {"batch": [e], "sent_at": "2030-01-01T10:00:10Z"})
    assert r.status_code == 200, r.text
    row = client.app.state.runtime.store.query(  # type: ignore[attr-defined]
        "SELECT epoch_ms(received_at) - epoch_ms(ts) AS lag FROM events"
    ).to_pylist()[0]
    assert row["lag"] == 10_000


def test_events_of_a_store_survive_reopen(settings: Settings, shop: AppCredentials) -> None:
    with TestClient(create_app(settings)) as c:
        post(c, shop.write_key, [event() for _ in range(3)])
    store = open_event_store(settings.event_store_url)
    assert store.count(shop.app_id) == 3
    store.close()
