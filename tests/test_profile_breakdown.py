"""Funnels and retention broken down by a profile attribute (`profile.NAME`), against the
plain-Python references: a person's group is their attribute value, whatever their events
carry; a person without the attribute is in the group of no value. Then the whole path: the
attribute set by `$set` on an event or by an import, read through the admin API and the CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, note
from hypothesis import settings as examples
from hypothesis import strategies as st

from liucun.analytics.funnel import FunnelQuery, funnel
from liucun.analytics.params import FunnelOrder, Period, RetentionType
from liucun.analytics.retention import RetentionQuery
from liucun.api.app import create_app
from liucun.config import Settings
from liucun.state.apps import AppCredentials
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state
from liucun.warehouse.person_keys import id_key
from tests import test_analytics_reference as analytics_ref
from tests import test_funnel_reference as funnel_ref
from tests.api_helpers import event
from tests.reference_stores import ENGINES, events_store
from tests.server_helpers import cli, cli_json, liucun_env
from tests.test_analytics_reference import BOUNDED, EVENTS, Ref, Scenario, StoreFactory, norm
from tests.test_cli import new_app
from tests.test_retention_breakdown import got_breakdown, ref_breakdown, scenarios

Profiles = dict[str, str | None]
VALUES = [None, "杭州", "上海", "3"]


def person_values(profiles: Mapping[str, str | None]) -> pa.Table:
    """The (person_id, value) table of `profiles` (id → value), as the state store gives it."""
    ids = list(profiles)
    return pa.table(
        {
            "person_id": pa.array([id_key(i) for i in ids], pa.int64()),
            "value": pa.array([profiles[i] for i in ids], pa.string()),
        }
    )


def profiles_over(ids: list[str]) -> st.SearchStrategy[Profiles]:
    """Some of `ids` with a value (null included): users, and anonymous ids too (an app may
    profile an id that it never identified)."""
    return st.dictionaries(st.sampled_from(ids), st.sampled_from(VALUES), max_size=len(ids))


@pytest.fixture(params=ENGINES)
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """A fresh store per call (see `reference_stores.events_store`), for one engine."""
    return functools.partial(events_store, request.param)


@pytest.mark.parametrize("order", list(FunnelOrder))
@examples(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    case=funnel_ref.cases(),
    profiles=profiles_over([*funnel_ref.USERS, *funnel_ref.ANONS]),
)
def test_funnel_by_profile_matches_reference(
    make_store: StoreFactory, order: FunnelOrder, case: funnel_ref.Case, profiles: Profiles
) -> None:
    note(f"events: {case.events}\nprofiles: {profiles}")
    q = FunnelQuery(case.steps, case.window, order, "profile.city")
    values = person_values(profiles)
    with make_store(case.batches, case.tz) as store:
        result = funnel(store, case.scope, q, values)
        funnel_ref.check_against_reference(result, case.events, case.scope, q, profiles)
        assert funnel_ref.both_plans(store, case.scope, q, values) == result


@BOUNDED
@given(
    sc=scenarios(),
    profiles=profiles_over([*analytics_ref.USERS, *analytics_ref.ANONS]),
    kind=st.sampled_from(list(RetentionType)),
    cumulative=st.booleans(),
    intervals=st.integers(1, 6),
    start_event=st.sampled_from(EVENTS),
    return_event=st.sampled_from(EVENTS),
)
def test_retention_by_profile_matches_reference(
    make_store: StoreFactory,
    sc: Scenario,
    profiles: Profiles,
    kind: RetentionType,
    cumulative: bool,
    intervals: int,
    start_event: str,
    return_event: str,
) -> None:
    note(f"{sc.describe()}\nprofiles: {profiles}")
    ref = Ref(sc.events, sc.tz)
    values = person_values(profiles)
    with make_store(sc.batches, sc.tz) as store:
        for period in Period:
            q = RetentionQuery(
                period, intervals, kind, start_event, return_event, cumulative, "profile.city"
            )
            want = ref_breakdown(ref, sc.scope(), q, "profile.city", profiles)
            assert got_breakdown(store, sc.scope(), q, values) == norm(want), q


def test_a_profile_breakdown_needs_the_values(make_store: StoreFactory) -> None:
    q = FunnelQuery(["a", "b"], 60, FunnelOrder.ordered, "profile.city")
    with (
        make_store([[]], "UTC") as store,
        pytest.raises(ValueError, match="needs the persons' values"),
    ):
        funnel(store, funnel_ref.MARCH, q)


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def admin_get(client: TestClient, shop: AppCredentials, kind: str, **params: object) -> object:
    return client.get(
        f"/admin/v1/apps/{shop.app_id}/metrics/{kind}",
        params=params,
        headers={"Authorization": f"Bearer {shop.admin_token}"},
    )


def shop_with_profiles(settings: Settings, client: TestClient) -> AppCredentials:
    """Asia/Shanghai, 20 November 2026 (09:00 local is 01:00Z).

    - device-1 opens the app, identifies as u-1 with `$set: {city: 杭州}`, views a page, pays.
    - device-2 opens the app and views a page, as u-2, whose city an import sets to 上海.
    - device-3 (never identified) opens the app: no profile.
    - u-3 opens the app with `$set: {city: 杭州}` and `$set_once: {city: 北京}` (ignored:
      the city is set already by the same event) and views a page.
    """
    shop = create_tenant(open_state(settings.state_store_url), "shop", "Asia/Shanghai")
    t = "2026-11-20T01:"
    batch = [
        event("app_open", anonymous_id="device-1", ts=t + "00:00Z"),
        event(
            "identify",
            anonymous_id="device-1",
            user_id="u-1",
            ts=t + "00:30Z",
            properties={"$set": {"city": "杭州"}},
        ),
        event("page_view", anonymous_id="device-1", user_id="u-1", ts=t + "01:00Z"),
        event(
            "order_paid",
            user_id="u-1",
            ts=t + "05:00Z",
            amount=9.9,
            properties={"order_id": "o-1"},
        ),
        event("app_open", anonymous_id="device-2", user_id="u-2", ts=t + "00:00Z"),
        event("page_view", anonymous_id="device-2", user_id="u-2", ts=t + "03:00Z"),
        event("app_open", anonymous_id="device-3", ts=t + "00:00Z"),
        event(
            "app_open",
            user_id="u-3",
            ts=t + "00:00Z",
            properties={"$set": {"city": "杭州"}, "$set_once": {"city": "北京"}},
        ),
        event("page_view", user_id="u-3", ts=t + "10:00Z"),
    ]
    headers = {"Authorization": f"Bearer {shop.write_key}"}
    r = client.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == len(batch), r.text
    imported = client.post(
        f"/admin/v1/apps/{shop.app_id}/profiles/import",
        json={"users": [{"user_id": "u-2", "attributes": {"city": "上海"}}]},
        headers={"Authorization": f"Bearer {shop.admin_token}"},
    )
    assert imported.status_code == 200 and imported.json()["accepted"] == 1, imported.text
    return shop


def test_funnel_and_retention_by_city_through_the_api(
    settings: Settings, client: TestClient
) -> None:
    shop = shop_with_profiles(settings, client)
    day = {"from": "2026-11-20", "to": "2026-11-20"}
    r = admin_get(
        client,
        shop,
        "funnel",
        **day,
        steps="app_open,page_view,order_paid",
        window="1h",
        breakdown="profile.city",
    )
    assert r.status_code == 200, r.text
    # 杭州: u-1 (pays 5 min in) and u-3 (its page view is 10 min in); 上海: u-2;
    # no value: device-3, the one who never logged in
    got = {g["value"]: [(s["persons"], s["median_seconds"]) for s in g["steps"]] for g in r.json()}
    assert got == {
        "杭州": [(2, None), (2, 330.0), (1, 240.0)],
        "上海": [(1, None), (1, 180.0), (0, None)],
        None: [(1, None), (0, None), (0, None)],
    }
    assert [g["value"] for g in r.json()] == ["杭州", "上海", None]
    r = admin_get(client, shop, "retention", **day, intervals=2, breakdown="profile.city")
    assert r.status_code == 200, r.text
    assert {g["value"]: g["cohorts"][0]["size"] for g in r.json()} == {
        "杭州": 2,
        "上海": 1,
        None: 1,
    }


def test_an_unknown_attribute_gets_422_naming_the_known_ones(
    settings: Settings, client: TestClient
) -> None:
    shop = shop_with_profiles(settings, client)
    r = admin_get(client, shop, "retention", breakdown="profile.ctiy")
    assert r.status_code == 422, r.text
    assert "no profile has attribute 'ctiy'" in r.text and "city" in r.text
    r = admin_get(client, shop, "retention", breakdown="profile.has space")
    assert r.status_code == 422, r.text


def test_cli_breaks_a_funnel_down_by_a_profile_attribute(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    new_app(env)
    rows = [
        event("app_open", user_id="u-1", ts="2026-11-20T01:00:00Z"),
        event(
            "order_paid",
            user_id="u-1",
            ts="2026-11-20T01:10:00Z",
            amount=5,
            properties={"order_id": "o-1"},
        ),
        event("app_open", user_id="u-2", ts="2026-11-20T01:00:00Z"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(orjson.dumps(r).decode() + "\n" for r in rows))
    assert cli(env, "import", str(events), "--app", "shop").returncode == 0
    users = tmp_path / "users.csv"
    users.write_text("user_id,gender\nu-1,女\nu-2,男\n")
    imported = cli(env, "profiles", "import", "--app", "shop", str(users))
    assert imported.returncode == 0, imported.stderr
    out = cli_json(
        env,
        "metrics",
        "funnel",
        "--app",
        "shop",
        "--steps",
        "app_open,order_paid",
        "--breakdown",
        "profile.gender",
        "--json",
    )
    assert {g["value"]: [s["persons"] for s in g["steps"]] for g in out} == {
        "女": [1, 1],
        "男": [1, 0],
    }


def test_query_tables_live_for_their_query_only(make_store: StoreFactory) -> None:
    """A table handed to `query` is read by its name, by that query alone, and is gone after
    (ClickHouse keeps it as a Memory table of its own name until the query ends)."""
    values = person_values({"u-1": "杭州", "u-2": None})
    with make_store([[]], "UTC") as store:
        got = store.query(
            "SELECT value, count(*) AS n FROM person_values GROUP BY value ORDER BY n, value",
            tables={"person_values": values},
        )
        assert got.to_pylist() == [{"value": "杭州", "n": 1}, {"value": None, "n": 1}]
        with pytest.raises(Exception, match="person_values"):
            store.query("SELECT count(*) FROM person_values")
        if store.dialect.name == "clickhouse":
            left = store.query(
                "SELECT count() AS n FROM system.tables "
                "WHERE database = currentDatabase() AND name LIKE 'query\\_%'"
            )
            assert left.column("n").to_pylist() == [0]
