"""The loyalty API's shared parts: user tokens, signing keys, points through HTTP, and the
reactions step of ingest (trusted backend events vs. public write-key events)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from liucun.loyalty.tokens import mint_user_token
from liucun.state.apps import create_app as create_tenant
from tests.loyalty_helpers import loyalty_server, settle

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def api(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    with loyalty_server(tmp_path, state_url, NOW) as srv:
        yield {"client": srv.client, "runtime": srv.runtime, "creds": srv.creds, "key": srv.key}


def token(api: dict[str, Any], user: str, now: datetime = NOW, ttl: int = 3600) -> str:
    key = api["key"]
    assert key.secret is not None
    return mint_user_token(api["creds"].app_id, user, key.key_id, key.secret, now, ttl)


def user_headers(api: dict[str, Any], user: str, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(api, user, **kw)}"}


def admin_headers(api: dict[str, Any], key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api['creds'].admin_token}"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


def admin_path(api: dict[str, Any], rest: str) -> str:
    return f"/admin/v1/apps/{api['creds'].app_id}/loyalty/{rest}"


def test_client_routes_need_a_valid_user_token(api: dict[str, Any]) -> None:
    c = api["client"]
    assert c.get("/v1/loyalty/points").status_code == 401
    r = c.get("/v1/loyalty/points", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    # the public write key is not a user token
    wk = {"Authorization": f"Bearer {api['creds'].write_key}"}
    assert c.get("/v1/loyalty/points", headers=wk).status_code == 401
    assert c.get("/v1/loyalty/points", headers=user_headers(api, "u1")).status_code == 200
    # expired (beyond the leeway), too long-lived, signed with another secret
    expired = user_headers(api, "u1", now=NOW - timedelta(hours=2))
    r = c.get("/v1/loyalty/points", headers=expired)
    assert r.status_code == 401 and r.json()["detail"]["code"] == "bad_user_token"
    too_long = user_headers(api, "u1", ttl=40 * 86_400)
    assert (
        "longer than" in c.get("/v1/loyalty/points", headers=too_long).json()["detail"]["message"]
    )
    forged = mint_user_token(api["creds"].app_id, "u1", api["key"].key_id, "x" * 64, NOW, 600)
    r = c.get("/v1/loyalty/points", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_a_retired_signing_key_stops_its_tokens(api: dict[str, Any]) -> None:
    c, kid = api["client"], api["key"].key_id
    headers = user_headers(api, "u1")
    listed = c.get(admin_path(api, "signing-keys"), headers=admin_headers(api)).json()
    assert [k["key_id"] for k in listed] == [kid] and listed[0]["secret"] is None
    assert (
        c.delete(admin_path(api, f"signing-keys/{kid}"), headers=admin_headers(api)).status_code
        == 204
    )
    api["runtime"]._cached.clear()  # the 30 s cache, as if it had run out
    assert c.get("/v1/loyalty/points", headers=headers).status_code == 401
    assert (
        c.delete(admin_path(api, f"signing-keys/{kid}"), headers=admin_headers(api)).status_code
        == 404
    )
    made = c.post(admin_path(api, "signing-keys"), headers=admin_headers(api))
    assert made.status_code == 201 and len(made.json()["secret"]) > 40


def test_points_through_the_admin_api_are_idempotent(api: dict[str, Any]) -> None:
    c = api["client"]
    body = {"user_id": "u1", "points": 120, "reason": "goodwill"}
    r = c.post(admin_path(api, "points/award"), json=body, headers=admin_headers(api))
    assert r.status_code == 422 and "Idempotency-Key" in r.text
    first = c.post(admin_path(api, "points/award"), json=body, headers=admin_headers(api, "k1"))
    again = c.post(admin_path(api, "points/award"), json=body, headers=admin_headers(api, "k1"))
    assert first.json() == {"user_id": "u1", "points": 120, "balance": 120, "replayed": False}
    assert again.json() == {**first.json(), "replayed": True}
    other = {**body, "points": 5}
    r = c.post(admin_path(api, "points/award"), json=other, headers=admin_headers(api, "k1"))
    assert r.status_code == 409 and r.json()["detail"]["code"] == "idempotency_key_reused"
    spend = {"user_id": "u1", "points": 500, "reason": "order 9"}
    r = c.post(admin_path(api, "points/spend"), json=spend, headers=admin_headers(api, "s1"))
    assert r.status_code == 409 and r.json()["detail"]["code"] == "insufficient_points"
    assert "积分不足" in r.json()["detail"]["zh"]
    adjust = {"user_id": "u1", "delta": -20, "reason": "duplicate order"}
    r = c.post(admin_path(api, "points/adjust"), json=adjust, headers=admin_headers(api, "a1"))
    assert r.json()["balance"] == 100
    points = c.get("/v1/loyalty/points", headers=user_headers(api, "u1")).json()
    assert points["balance"] == points["available"] == 100
    journal = c.get("/v1/loyalty/points/journal", headers=user_headers(api, "u1")).json()
    assert [(j["kind"], j["debit"], j["credit"], j["points"]) for j in journal] == [
        ("adjust", "member", "adjusted", 20),
        ("earn", "earned", "member", 120),
    ]


def test_another_apps_admin_token_cannot_award(api: dict[str, Any]) -> None:
    other = create_tenant(api["runtime"].state, "other", "Asia/Shanghai")
    headers = {"Authorization": f"Bearer {other.admin_token}", "Idempotency-Key": "x"}
    body = {"user_id": "u1", "points": 1, "reason": "r"}
    assert (
        api["client"].post(admin_path(api, "points/award"), json=body, headers=headers).status_code
        == 403
    )


def _order(user: str, order_id: str, amount: float, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event": "order_paid",
        "user_id": user,
        "ts": "2026-11-20T01:00:00Z",
        "amount": amount,
        "properties": {"order_id": order_id},
    }


def test_orders_earn_only_when_the_backend_sends_them(api: dict[str, Any]) -> None:
    c = api["client"]
    forged = _order("u1", "o-1", 999.0)
    wk = {"Authorization": f"Bearer {api['creds'].write_key}"}
    assert c.post("/v1/batch", json={"batch": [forged]}, headers=wk).status_code == 200
    settle(api["runtime"])
    assert c.get("/v1/loyalty/points", headers=user_headers(api, "u1")).json()["balance"] == 0
    # the admin token alone is not a write key
    r = c.post("/v1/batch", json={"batch": [forged]}, headers=admin_headers(api))
    assert r.status_code == 401
    # nor is another app's admin token the backend's mark
    other = create_tenant(api["runtime"].state, "other", "Asia/Shanghai")
    wrong = {**wk, "X-Admin-Token": other.admin_token}
    assert c.post("/v1/batch", json={"batch": [forged]}, headers=wrong).status_code == 401
    backend = {**wk, "X-Admin-Token": api["creds"].admin_token}
    paid = _order("u1", "o-2", 88.5)
    for _ in range(3):  # the backend retries: stored once, awarded once
        r = c.post("/v1/batch", json={"batch": [paid]}, headers=backend)
        assert r.status_code == 200
    settle(api["runtime"])
    # 88.50 yuan × 1 point per yuan, rounded down
    assert c.get("/v1/loyalty/points", headers=user_headers(api, "u1")).json()["balance"] == 88
    # the same order again under another event id (a re-import) earns nothing more
    again = _order("u1", "o-2", 88.5)
    assert c.post("/v1/batch", json={"batch": [again]}, headers=backend).status_code == 200
    settle(api["runtime"])
    assert c.get("/v1/loyalty/points", headers=user_headers(api, "u1")).json()["balance"] == 88


def test_posthog_capture_runs_the_loyalty_rules_untrusted(api: dict[str, Any]) -> None:
    c, key = api["client"], api["creds"].write_key
    share = {"event": "share", "distinct_id": "u7", "uuid": str(uuid.uuid4())}
    order = {
        "event": "order_paid",
        "distinct_id": "u7",
        "uuid": str(uuid.uuid4()),
        "properties": {"amount": 500, "order_id": "o-9"},
    }
    for _ in range(2):  # the SDK retries: one award
        r = c.post("/batch/", json={"api_key": key, "batch": [share, order]})
        assert r.status_code == 200, r.text
    settle(api["runtime"])
    # 5 points a share (rule share_points) + 10 for the daily task "share once"; the client's
    # order earns nothing
    assert c.get("/v1/loyalty/points", headers=user_headers(api, "u7")).json()["balance"] == 15
