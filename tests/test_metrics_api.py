"""The metrics contract: `/admin/v1/apps/{app}/metrics/{kind}` and `liucun metrics KIND`.

Numbers here are worked out by hand on a tiny app; `test_analytics_reference.py` checks the
metrics against a plain-Python reference on random data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from liucun.api.app import create_app
from liucun.config import Settings
from liucun.state.apps import AppCredentials
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state
from tests.api_helpers import event
from tests.server_helpers import cli, cli_json, liucun_env
from tests.test_cli import new_app, write_jsonl

# Asia/Shanghai is UTC+8: 01:00Z is 09:00 local on the same date.
VISITS = [
    ("device-1", "2026-11-16T01:00:00Z"),  # Monday
    ("device-1", "2026-11-17T01:00:00Z"),
    ("device-2", "2026-11-17T01:00:00Z"),
    ("device-2", "2026-11-17T15:59:59Z"),  # 23:59:59 local, still the 17th
    ("device-3", "2026-11-17T16:00:00Z"),  # 00:00 local on the 18th
]


def visits() -> list[dict[str, object]]:
    return [event("app_open", anonymous_id=who, ts=ts) for who, ts in VISITS]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def shop(settings: Settings, client: TestClient) -> AppCredentials:
    creds = create_tenant(open_state(settings.state_store_url), "shop", "Asia/Shanghai")
    send(client, creds, visits())
    return creds


def send(client: TestClient, shop: AppCredentials, events: list[dict[str, object]]) -> None:
    """Ingest `events` for the shop through the API."""
    r = client.post(
        "/v1/batch",
        content=orjson.dumps({"batch": events}),
        headers={"Authorization": f"Bearer {shop.write_key}"},
    )
    assert r.status_code == 200, r.text


def get(client: TestClient, token: str, path: str, **params: object) -> object:
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def test_retention_by_day(client: TestClient, shop: AppCredentials) -> None:
    r = get(
        client,
        shop.admin_token,
        "/admin/v1/apps/shop/metrics/retention",
        **{"from": "2026-11-16", "to": "2026-11-18", "intervals": 3},
    )
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"start": "2026-11-16", "size": 1, "counts": [1, 1, 0]},
        {"start": "2026-11-17", "size": 1, "counts": [1, 0]},
        {"start": "2026-11-18", "size": 1, "counts": [1]},
    ]


def test_active_lifecycle_and_stickiness(client: TestClient, shop: AppCredentials) -> None:
    base = f"/admin/v1/apps/{shop.app_id}/metrics"
    dates = {"from": "2026-11-16", "to": "2026-11-18"}
    active = get(client, shop.admin_token, f"{base}/active", **dates).json()
    assert [(d["day"], d["dau"], d["wau"], d["visits"]) for d in active["days"]] == [
        ("2026-11-16", 1, 1, 1),
        ("2026-11-17", 2, 2, 3),
        ("2026-11-18", 1, 3, 1),
    ]
    assert active["months"] == [{"month": "2026-11-01", "mau": 3, "complete": False}]
    life = get(client, shop.admin_token, f"{base}/lifecycle", **dates).json()
    assert [(p["new"], p["returning"], p["resurrecting"], p["dormant"]) for p in life] == [
        (1, 0, 0, 0),
        (1, 1, 0, 0),
        (1, 0, 0, -2),
    ]
    sticky = get(client, shop.admin_token, f"{base}/stickiness", **dates).json()
    assert sticky == [
        {"periods": 1, "users": 2},
        {"periods": 2, "users": 1},
        {"periods": 3, "users": 0},
    ]


def test_retention_by_platform(client: TestClient, shop: AppCredentials) -> None:
    """The shop's visits carry no platform; device-4 opens on Alipay then WeChat on the 17th
    and returns on the 18th: it is in the alipay group (its first start event)."""
    more = [
        event("app_open", anonymous_id="device-4", ts="2026-11-17T02:00:00Z", platform="alipay"),
        event("app_open", anonymous_id="device-4", ts="2026-11-17T03:00:00Z", platform="wechat"),
        event("app_open", anonymous_id="device-4", ts="2026-11-18T03:00:00Z", platform="wechat"),
    ]
    send(client, shop, more)
    r = get(
        client,
        shop.admin_token,
        "/admin/v1/apps/shop/metrics/retention",
        **{"from": "2026-11-16", "to": "2026-11-18", "intervals": 3, "breakdown": "platform"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == [
        {
            "value": None,
            "cohorts": [
                {"start": "2026-11-16", "size": 1, "counts": [1, 1, 0]},
                {"start": "2026-11-17", "size": 1, "counts": [1, 0]},
                {"start": "2026-11-18", "size": 1, "counts": [1]},
            ],
        },
        {
            "value": "alipay",
            "cohorts": [
                {"start": "2026-11-16", "size": 0, "counts": [0, 0, 0]},
                {"start": "2026-11-17", "size": 1, "counts": [1, 1]},
                {"start": "2026-11-18", "size": 0, "counts": [0]},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("funnels", {}, "Input should be 'active'"),
        ("retention", {"from": "2026-11-18", "to": "2026-11-16"}, "is after"),
        ("retention", {"intervals": 0}, "greater than or equal to 1"),
        ("retention", {"period": "year"}, "day"),
        ("active", {"event": "never_sent"}, "unknown event"),
        ("active", {"colour": "red"}, "Extra inputs"),
        ("stickiness", {"min_events": -1}, "greater than or equal to 1"),
        ("funnel", {}, "needs --steps"),
        ("funnel", {"steps": "app_open"}, "2 to 10 event names"),
        ("funnel", {"steps": "app_open,page_view", "window": "0d"}, "longer than 0"),
        ("funnel", {"steps": "app_open,page_view", "window": "soon"}, "pattern"),
        ("funnel", {"steps": "app_open,nope"}, "unknown event"),
        ("funnel", {"steps": "app_open,page_view[colour=red]"}, "event[field=value]"),
        ("funnel", {"steps": "app_open,nope[page=pages/home]"}, "unknown event"),
        ("funnel", {"steps": "app_open,page_view", "breakdown": "x;drop"}, "pattern"),
        ("retention", {"breakdown": "properties.a b"}, "pattern"),
        ("heatmap", {}, "needs --page"),
        ("heatmap", {"page": "pages/home", "grid": "0x10"}, "columns and rows from 1"),
        ("exits", {"limit": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_options_get_422_with_a_reason(
    client: TestClient, shop: AppCredentials, kind: str, params: dict[str, object], message: str
) -> None:
    r = get(client, shop.admin_token, f"/admin/v1/apps/shop/metrics/{kind}", **params)
    assert r.status_code == 422, r.text
    assert message in r.text


def test_metrics_need_the_apps_admin_token(
    client: TestClient, shop: AppCredentials, settings: Settings
) -> None:
    other = create_tenant(open_state(settings.state_store_url), "other", "UTC")
    assert client.get("/admin/v1/apps/shop/metrics/active").status_code == 401
    r = get(client, other.admin_token, "/admin/v1/apps/shop/metrics/active")
    assert r.status_code == 403
    r = get(client, shop.write_key, "/admin/v1/apps/shop/metrics/active")
    assert r.status_code == 403


def test_cli_metrics_json_and_exit_status(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    new_app(env)
    loaded = cli(env, "import", write_jsonl(tmp_path / "v.jsonl", visits()), "--app", "shop")
    assert loaded.returncode == 0, loaded.stderr
    out = cli_json(env, "metrics", "retention", "--app", "shop", "--from", "2026-11-16", "--json")
    # `--to` defaults to the latest day with data, the 18th
    assert [c["counts"] for c in out] == [[1, 1, 0], [1, 0], [1]]
    table = cli(env, "metrics", "mau-report", "--app", "shop")
    assert table.returncode == 0 and "MAU" in table.stdout
    # the visits carry no platform: one group, named as having no value
    split = cli(env, "metrics", "retention", "--app", "shop", "--breakdown", "platform")
    assert split.returncode == 0 and "retention 留存 · (无值 no value)" in split.stdout
    bad = cli(env, "metrics", "retention", "--app", "shop", "--type", "sometimes")
    assert bad.returncode == 2 and "type" in bad.stderr
    unknown = cli(env, "metrics", "nothing", "--app", "shop")
    assert unknown.returncode == 2 and "unknown metric" in unknown.stderr


def test_funnel_by_hand(client: TestClient, shop: AppCredentials) -> None:
    day = "2026-11-20T01:"  # 09:xx local
    paid = {"amount": 9.9, "properties": {"order_id": "o-1"}}
    batch = [
        event("app_open", anonymous_id="device-1", ts=day + "00:00Z"),
        event("page_view", anonymous_id="device-1", ts=day + "01:00Z"),
        event("order_paid", anonymous_id="device-1", ts=day + "05:00Z", **paid),
        event("app_open", anonymous_id="device-2", ts=day + "00:00Z"),
        event("page_view", anonymous_id="device-2", ts=day + "02:00Z"),
        event("app_open", anonymous_id="device-3", ts=day + "00:00Z"),
    ]
    send(client, shop, batch)
    steps = get(
        client,
        shop.admin_token,
        "/admin/v1/apps/shop/metrics/funnel",
        **{"from": "2026-11-20", "to": "2026-11-20", "steps": "app_open,page_view,order_paid"},
        window="1h",
    ).json()
    assert [(s["persons"], s["drop_off"]) for s in steps] == [(3, 0), (2, 1), (1, 1)]
    assert [round(s["step_conversion"], 4) for s in steps] == [1.0, 0.6667, 0.5]
    assert [s["median_seconds"] for s in steps] == [None, 90.0, 240.0]
    assert steps[1]["mean_seconds"] == 90.0
    too_short = get(
        client,
        shop.admin_token,
        "/admin/v1/apps/shop/metrics/funnel",
        **{"from": "2026-11-20", "to": "2026-11-20", "steps": "app_open,order_paid"},
        window="4m",
    ).json()
    assert [s["persons"] for s in too_short] == [3, 0]


def test_exits_paths_and_heatmap_by_hand(client: TestClient, shop: AppCredentials) -> None:
    at = "2026-11-21T02:"  # 10:xx local
    screen = {"screen_width": 400, "screen_height": 800}
    batch = [
        event("page_view", session_id="s1", page="home", ts=at + "00:00Z"),
        event("page_view", session_id="s1", page="home", ts=at + "00:10Z"),  # a refresh
        event("page_view", session_id="s1", page="list", ts=at + "00:20Z"),
        event("page_view", session_id="s2", page="home", ts=at + "05:00Z"),
        event("tap", page="home", x=399.0, y=0.0, properties=screen, ts=at + "00:05Z"),
        event("tap", page="home", x=400.0, y=799.0, properties=screen, ts=at + "00:06Z"),
        event("tap", page="home", x=10.0, y=10.0, ts=at + "00:07Z"),  # no screen size
    ]
    send(client, shop, batch)
    base = "/admin/v1/apps/shop/metrics"
    day = {"from": "2026-11-21", "to": "2026-11-21"}
    exits = get(client, shop.admin_token, f"{base}/exits", **day).json()
    assert [(e["page"], e["views"], e["sessions"], e["exits"]) for e in exits] == [
        ("home", 3, 2, 1),
        ("list", 1, 1, 1),
    ]
    links = get(client, shop.admin_token, f"{base}/paths", **day).json()
    assert {(x["source"], x["target"]): x["sessions"] for x in links} == {
        ("$entry", "home"): 2,
        ("home", "list"): 1,
        ("home", "$exit"): 1,
        ("list", "$exit"): 1,
    }
    heat = get(client, shop.admin_token, f"{base}/heatmap", **day, page="home", grid="2x2").json()
    assert heat["cells"] == [[0, 1], [0, 1]]
    assert (heat["taps"], heat["skipped"]) == (3, 1)


def test_imported_creation_times_decide_who_is_new(
    client: TestClient, shop: AppCredentials
) -> None:
    base = "/admin/v1/apps/shop"
    day = {"from": "2026-11-18", "to": "2026-11-18"}

    def new_and_resurrecting() -> list[tuple[int, int]]:
        periods = get(client, shop.admin_token, f"{base}/metrics/lifecycle", **day).json()
        return [(p["new"], p["resurrecting"]) for p in periods]

    # device-3 first appears on the 18th: new, without a creation time
    assert new_and_resurrecting() == [(1, 0)]
    users = {
        "users": [
            {"user_id": "device-3", "created_at": "2026-11-01T00:00:00+08:00"},
            {"user_id": "device-3", "created_at": "2026-11-05T00:00:00Z"},  # later: ignored
            {"user_id": "", "created_at": "2026-11-01T00:00:00Z"},
            {"user_id": "u-9", "created_at": "1999-01-01T00:00:00Z"},
            {"user_id": "u-9"},
        ]
    }
    r = client.post(
        f"{base}/users",
        content=orjson.dumps(users),
        headers={
            "Authorization": f"Bearer {shop.admin_token}",
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 2
    assert [x["index"] for x in answer["rejected"]] == [2, 3, 4]
    # created on 1 November, first seen on the 18th: resurrecting, as PostHog counts it
    assert new_and_resurrecting() == [(0, 1)]


def test_cli_imports_users(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    new_app(env)
    path = tmp_path / "users.csv"
    path.write_text("user_id,created_at\nu-1,2026-11-01T08:00:00Z\n,2026-11-01\nu-2,soon\n")
    out = cli_json(env, "import", "--users", path, "--app", "shop", "--json")
    assert out["rows"] == 3 and out["accepted"] == 1
    assert [line for line, _ in out["rejected"]] == [3, 4]
    both = cli(env, "import", path, "--users", path, "--app", "shop")
    assert both.returncode == 2 and "one of the two" in both.stderr


def test_saved_funnel_key_path(client: TestClient, shop: AppCredentials) -> None:
    auth = {"Authorization": f"Bearer {shop.admin_token}", "Content-Type": "application/json"}
    key_path = {"steps": "app_open, app_open", "window": "1d"}
    r = client.put(
        "/admin/v1/apps/shop/funnels/key path", content=orjson.dumps(key_path), headers=auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["steps"] == "app_open,app_open"
    # saving again under the same name replaces it
    key_path["window"] = "2d"
    r = client.put(
        "/admin/v1/apps/shop/funnels/key path", content=orjson.dumps(key_path), headers=auth
    )
    listed = client.get("/admin/v1/apps/shop/funnels", headers=auth).json()
    assert [(f["name"], f["window"]) for f in listed] == [("key path", "2d")]
    steps = get(
        client,
        shop.admin_token,
        "/admin/v1/apps/shop/metrics/funnel",
        saved="key path",
        **{"from": "2026-11-16", "to": "2026-11-18"},
    ).json()
    # device-1 visited on the 16th and 17th: two visits within 2 days; device-2's two visits
    # on the 17th too; device-3 once
    assert [s["persons"] for s in steps] == [3, 2]
    missing = get(client, shop.admin_token, "/admin/v1/apps/shop/metrics/funnel", saved="nope")
    assert missing.status_code == 422 and "no saved funnel 'nope'" in missing.text
    bad = client.put("/admin/v1/apps/shop/funnels/x", content=b'{"steps": "a"}', headers=auth)
    assert bad.status_code == 422
