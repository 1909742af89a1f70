"""Two real `liucun serve` processes on one PostgreSQL state store keep its invariants.

Apps and their keys; loyalty's (no double award, coupon limits, one check-in a day) and
engage's (frequency caps and consent credits under concurrent sends) on this same pair. Each
server has its own event store here: the ClickHouse store that several servers share is tested
in tests/test_clickhouse_store.py (its engine runs in one process here).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.server_helpers import ServerProcess, liucun_env, make_event

ADMIN = "server-admin-token-for-the-pair"
NAMES = [f"shop-{i}" for i in range(12)]
ATTEMPTS_PER_NAME = 4  # per server


@pytest.fixture
def pair(tmp_path: Path, pg_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    envs = [
        # no delivery loop: queued messages stay as decided (there is no WeChat to reach)
        liucun_env(
            tmp_path / name,
            pg_url,
            LIUCUN_ADMIN_TOKEN=ADMIN,
            LIUCUN_INGEST_WORKERS="0",
            LIUCUN_DELIVER_EVERY_S="0",
        )
        for name in ("one", "two")
    ]
    servers = (ServerProcess(envs[0]), ServerProcess(envs[1]))
    # started together on an empty database: both migrate it, one after the other
    starting = [threading.Thread(target=s.start) for s in servers]
    try:
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        for s in servers:
            assert s.proc is not None and s.proc.poll() is None, s.log()
        yield servers
    finally:
        for s in servers:
            s.stop()


def admin(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)


def test_apps_made_at_once_on_two_servers_exist_once(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    statuses: Counter[tuple[str, int]] = Counter()
    created: dict[str, list[dict[str, str]]] = {n: [] for n in NAMES}
    lock = threading.Lock()
    start = threading.Barrier(2 * 2)

    def create_all(base: str) -> None:
        with admin(base) as client:
            start.wait()
            for _ in range(ATTEMPTS_PER_NAME):
                for name in NAMES:
                    r = client.post("/admin/v1/apps", json={"name": name})
                    with lock:
                        statuses[(name, r.status_code)] += 1
                        if r.status_code == 201:
                            created[name].append(r.json())

    # two clients per server, every one trying every name
    servers = [s.url for s in pair for _ in range(2)]
    threads = [threading.Thread(target=create_all, args=(base,)) for base in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for name in NAMES:
        assert statuses[(name, 201)] == 1, statuses
        assert statuses[(name, 409)] == 4 * ATTEMPTS_PER_NAME - 1, statuses
    # both servers list the same apps, each once
    listings = []
    for server in pair:
        with admin(server.url) as client:
            listings.append(
                sorted((a["name"], a["app_id"]) for a in client.get("/admin/v1/apps").json())
            )
    assert listings[0] == listings[1]
    assert [n for n, _ in listings[0]] == sorted(NAMES)
    assert sorted(c[0]["app_id"] for c in created.values()) == sorted(i for _, i in listings[0])


def test_keys_from_one_server_work_on_the_other(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = pair
    with admin(one.url) as client:
        r = client.post("/admin/v1/apps", json={"name": "shop", "timezone": "Asia/Tokyo"})
    assert r.status_code == 201, r.text
    creds = r.json()
    # the other server knows the write key and the app's own admin token at once
    events = [make_event(i) for i in range(5)]
    r = httpx.post(
        f"{two.url}/v1/batch",
        content=orjson.dumps({"batch": events}),
        headers={"Authorization": f"Bearer {creds['write_key']}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["new"] == 5
    headers = {"Authorization": f"Bearer {creds['admin_token']}"}
    count = httpx.get(f"{two.url}/admin/v1/apps/{creds['app_id']}/events/count", headers=headers)
    assert count.status_code == 200 and count.json()["events"] == 5
    # a funnel saved through one server is the other's too
    funnel = {"steps": "app_open, page_view", "window": "1d"}
    r = httpx.put(f"{one.url}/admin/v1/apps/shop/funnels/key path", json=funnel, headers=headers)
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{two.url}/admin/v1/apps/shop/funnels", headers=headers).json()
    assert [(f["name"], f["window"]) for f in listed] == [("key path", "1d")]
    # a wrong key is refused by both
    for server in pair:
        r = httpx.post(
            f"{server.url}/v1/batch",
            content=orjson.dumps({"batch": events}),
            headers={"Authorization": "Bearer wk_not-a-key"},
        )
        assert r.status_code == 401


def shop_with_playbook(base: str, playbook: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new app `shop` with `playbook` in force: its credentials and a user-token signing key."""
    with admin(base) as client:
        creds = client.post("/admin/v1/apps", json={"name": "shop"}).json()
        key = client.post(f"/admin/v1/apps/{creds['app_id']}/loyalty/signing-keys").json()
        r = client.put(
            f"/admin/v1/apps/{creds['app_id']}/playbook",
            content=playbook.encode(),
            headers={"Content-Type": "text/yaml"},
        )
        assert r.status_code == 201, r.text
    return creds, key


SCARCE_PLAYBOOK = """\
version: 1
loyalty:
  checkin: {points: 10}
  coupons:
    templates:
      - {name: scarce, zh: 稀缺券, en: Scarce, kind: no_threshold, yuan: 5, total_limit: 10}
      - {name: points_5, zh: 5 元券, en: 5 off, kind: no_threshold, yuan: 5}
      - {name: ladder_8, zh: 8 元券, en: 8 off, kind: no_threshold, yuan: 8}
      - {name: streak_7, zh: 3 元券, en: 3 off, kind: no_threshold, yuan: 3}
      - {name: first_order_10, zh: 首单券, en: First order, kind: no_threshold, yuan: 10}
      - {name: invite_10, zh: 邀请券, en: Invite, kind: no_threshold, yuan: 10}
      - {name: group_20, zh: 拼团券, en: Group, kind: no_threshold, yuan: 20}
      - {name: help_discount, zh: 助力券, en: Help, kind: discount, percent_off: 10}
"""


def test_loyalty_invariants_hold_across_two_servers(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    from datetime import UTC, datetime

    from liucun.loyalty.tokens import mint_user_token

    creds, key = shop_with_playbook(pair[0].url, SCARCE_PLAYBOOK)
    now = datetime.now(UTC)

    def user(uid: str) -> dict[str, str]:
        jwt = mint_user_token(creds["app_id"], uid, key["key_id"], key["secret"], now, 600)
        return {"Authorization": f"Bearer {jwt}"}

    statuses: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def hit(base: str, method: str, path: str, headers: dict[str, str], body: Any = None) -> None:
        r = httpx.request(method, base + path, headers=headers, json=body, timeout=60)
        with lock:
            statuses[(path, r.status_code)] += 1

    award = f"/admin/v1/apps/{creds['app_id']}/loyalty/points/award"
    admin_headers = {"Authorization": f"Bearer {creds['admin_token']}"}
    jobs: list[tuple[Any, ...]] = []
    for i in range(40):  # 40 users claim a coupon of 10, through either server
        headers = {**user(f"c{i}"), "Idempotency-Key": f"claim-{i}"}
        jobs.append(
            (pair[i % 2].url, "POST", "/v1/loyalty/coupons/claim", headers, {"template": "scarce"})
        )
    for i in range(20):  # one user checks in 20 times, through both
        jobs.append((pair[i % 2].url, "POST", "/v1/loyalty/checkin", user("walker"), None))
    for i in range(20):  # one award retried through both servers: the same key
        headers = {**admin_headers, "Idempotency-Key": "award-1"}
        body = {"user_id": "walker", "points": 7, "reason": "goodwill"}
        jobs.append((pair[i % 2].url, "POST", award, headers, body))
    threads = [threading.Thread(target=hit, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses[("/v1/loyalty/coupons/claim", 200)] == 10, statuses
    assert statuses[("/v1/loyalty/coupons/claim", 409)] == 30, statuses
    assert statuses[("/v1/loyalty/checkin", 200)] == 20, statuses
    assert statuses[(award, 200)] == 20, statuses
    # one check-in (10 points) and one award (7 points): 17, whichever server is asked
    for server in pair:
        points = httpx.get(f"{server.url}/v1/loyalty/points", headers=user("walker")).json()
        assert points["balance"] == 17, points


MESSAGES_PLAYBOOK = """\
version: 1
engage:
  messages:
    caps: {per_day: 1, per_month: 3}
    quiet_hours: {enabled: false, start: '22:00', end: '08:00'}
    templates:
      winback_coupon:
        zh: 专属回归福利到账
        en: Welcome-back coupon
        page: pages/coupons/index
        channels:
          - {channel: wechat, template_id: tmpl-w, subscription: one_time, page: null,
             fields: {thing1: '{coupon_name}', thing2: 专属福利已到账}}
"""


def test_message_caps_and_credits_hold_across_two_servers(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """A user who accepted the template five times (five credits) is sent twenty different
    messages at once through both servers: the daily cap of one lets exactly one through,
    every other is skipped for the cap, and one credit is spent."""
    from datetime import UTC, datetime

    from liucun.engage.holdout import in_global_control
    from liucun.loyalty.tokens import mint_user_token

    creds, key = shop_with_playbook(pair[0].url, MESSAGES_PLAYBOOK)
    with admin(pair[0].url) as client:
        r = client.put(
            f"/admin/v1/apps/{creds['app_id']}/channels/wechat",
            json={"settings": {"appid": "wx-test"}, "secrets": {"secret": "app-secret"}},
        )
        assert r.status_code == 200, r.text
    # a user outside the app's global control group (5%, drawn by app id): sends reach them
    fan = next(
        user
        for user in (f"fan-{i}" for i in range(100))
        if not in_global_control(creds["app_id"], user, 0.05)
    )
    jwt = mint_user_token(
        creds["app_id"], fan, key["key_id"], key["secret"], datetime.now(UTC), 600
    )
    consent = {"channel": "wechat", "results": {"tmpl-w": "accept"}}
    for i in range(5):  # five prompts accepted, through either server: five credits
        r = httpx.post(
            f"{pair[i % 2].url}/v1/engage/consents",
            json=consent,
            headers={"Authorization": f"Bearer {jwt}", "Idempotency-Key": f"prompt-{i}"},
        )
        assert r.status_code == 200, r.text
    path = f"/admin/v1/apps/{creds['app_id']}/messages"
    headers = {"Authorization": f"Bearer {creds['admin_token']}"}
    decisions: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        body = {
            "requests": [
                {
                    "user_id": fan,
                    "scenario": "winback_coupon",
                    "key": f"m{i}",
                    "data": {"coupon_name": "20 元券"},
                }
            ]
        }
        r = httpx.post(pair[i % 2].url + path, json=body, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        with lock:
            decisions.extend(r.json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = Counter((d["status"], d["reason"]) for d in decisions)
    assert outcomes == {("queued", None): 1, ("skipped", "cap_day"): 19}, outcomes
    sent = next(d["key"] for d in decisions if d["status"] == "queued")
    # the same request again, through the other server: the first decision, nothing more
    again = httpx.post(
        pair[1].url + path,
        json={
            "requests": [
                {
                    "user_id": fan,
                    "scenario": "winback_coupon",
                    "key": sent,
                    "data": {"coupon_name": "20 元券"},
                }
            ]
        },
        headers=headers,
    ).json()
    assert [(d["key"], d["status"]) for d in again] == [(sent, "queued")]
    for server in pair:
        listed = httpx.get(
            f"{server.url}/v1/engage/consents", headers={"Authorization": f"Bearer {jwt}"}
        ).json()
        assert [(s["template_id"], s["credits"]) for s in listed] == [("tmpl-w", 4)], listed
