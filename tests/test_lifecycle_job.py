"""The daily labelling job, its history, relabelling, win-back lists, and their API and CLI.

`test_labels.py` checks one day's labels against a reference written from the definition; here
the history is checked against those one-day labels (the label on day D read back from the
stored transitions equals the labels computed for D), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from liucun.api.app import create_app
from liucun.config import Settings
from liucun.lifecycle.daily import plan_labels, run_labels
from liucun.lifecycle.label_history import label_counts, labels_on, person_history
from liucun.lifecycle.labels import labels_as_of
from liucun.lifecycle.winback import quintile_scores, winback_csv, winback_list
from liucun.playbook.load import default_playbook
from liucun.playbook.store import apply_playbook
from liucun.state.apps import App, AppCredentials
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state
from liucun.state.tables import apps
from liucun.warehouse.store import EventStore
from tests.reference_stores import APP, events_store
from tests.server_helpers import cli, cli_json, liucun_env
from tests.test_analytics_reference import Ev, ev
from tests.test_cli import new_app, write_jsonl

TZ = "Asia/Shanghai"


def daily_opens(who: str, first: int, last: int, month: int = 3) -> list[Ev]:
    return [
        ev("app_open", f"2026-{month:02d}-{d:02d}T02:00:00Z", anon=who)
        for d in range(first, last + 1)
    ]


EVENTS = [
    *daily_opens("loyal", 1, 31),
    *daily_opens("leaver", 1, 10),
    ev("order_paid", "2026-03-02T03:00:00Z", anon="leaver"),
    *daily_opens("late", 20, 22),
    *daily_opens("back", 1, 3),
    *daily_opens("back", 28, 28),
]


@pytest.fixture
def state(state_url: str) -> Iterator[sa.Engine]:
    engine = open_state(state_url)
    with engine.begin() as conn:
        conn.execute(
            apps.insert(),
            {
                "app_id": APP,
                "name": "shop",
                "timezone": TZ,
                "write_key": "wk_test",
                "admin_token_sha256": "0" * 64,
                "created_at": datetime.now(UTC),
            },
        )
    yield engine
    engine.dispose()


@pytest.fixture
def store() -> Iterator[EventStore]:
    with events_store("duckdb", [EVENTS], TZ) as s:
        yield s


SHOP = App(APP, "shop", TZ, "wk_test")


def label(store: EventStore, state: sa.Engine, first: date, last: date, relabel: bool = False):  # type: ignore[no-untyped-def]
    plan = plan_labels(store, state, SHOP, first, last, relabel)
    return plan, run_labels(store, state, SHOP, plan)


def test_history_gives_each_days_labels(store: EventStore, state: sa.Engine) -> None:
    first, last = date(2026, 3, 1), date(2026, 4, 10)
    plan, days = label(store, state, first, last)
    assert plan.days_to_compute == 41 and days[0].day == first
    rules = default_playbook().churn
    for i in range(41):
        day = first + timedelta(days=i)
        direct = labels_as_of(store, APP, TZ, rules, day)
        stored = {t.person_id: t.label for t in labels_on(state, APP, day)}
        assert stored == dict(zip(direct.persons, direct.labels, strict=True)), day
        assert days[i].counts == {**direct.counts()}, day
    # one row per change: the loyal user is new for 7 days, then active for good
    loyal = [(t.day, t.label, t.previous) for t in person_history(state, APP, "loyal")]
    assert loyal == [(date(2026, 3, 1), "new", None), (date(2026, 3, 8), "active", "new")]


def test_reading_labelled_days_computes_nothing_and_gaps_are_filled(
    store: EventStore, state: sa.Engine
) -> None:
    label(store, state, date(2026, 3, 5), date(2026, 3, 5))
    again, _ = label(store, state, date(2026, 3, 5), date(2026, 3, 5))
    assert again.days_to_compute == 0
    later, days = label(store, state, date(2026, 3, 9), date(2026, 3, 9))
    # the days between are labelled too, so the history has no hole
    assert (later.compute_from, later.compute_to) == (date(2026, 3, 6), date(2026, 3, 9))
    assert [d.day for d in label_counts(state, APP, date(2026, 3, 1), date(2026, 3, 31))] == [
        date(2026, 3, d) for d in range(5, 10)
    ]
    assert [d.day for d in days] == [date(2026, 3, 9)]


def test_relabel_after_a_playbook_change(store: EventStore, state: sa.Engine) -> None:
    label(store, state, date(2026, 3, 1), date(2026, 3, 31))
    stricter = default_playbook().model_dump(mode="json")
    stricter["churn"]["presets"]["ecommerce"]["established"] = {
        "silent_after_days": 2,
        "churned_after_days": 4,
    }
    revision = apply_playbook(state, APP, orjson.dumps(stricter).decode())
    plan, _ = label(store, state, date(2026, 3, 15), date(2026, 3, 15), relabel=True)
    # relabelling from the 15th recomputes through the latest labelled day
    assert (plan.compute_from, plan.compute_to) == (date(2026, 3, 15), date(2026, 3, 31))
    counts = label_counts(state, APP, date(2026, 3, 1), date(2026, 3, 31))
    assert {d.playbook_revision for d in counts if d.day < date(2026, 3, 15)} == {0}
    assert {d.playbook_revision for d in counts if d.day >= date(2026, 3, 15)} == {revision}
    old_rules = default_playbook().churn
    new_rules = old_rules.model_validate(stricter["churn"])
    for day in (date(2026, 3, 14), date(2026, 3, 20), date(2026, 3, 31)):
        rules = old_rules if day < date(2026, 3, 15) else new_rules
        direct = labels_as_of(store, APP, TZ, rules, day)
        stored = {t.person_id: t.label for t in labels_on(state, APP, day)}
        assert stored == dict(zip(direct.persons, direct.labels, strict=True)), day
    # the change shows: 10 days away is active under the default, churned under the new one
    assert {t.person_id: t.label for t in labels_on(state, APP, date(2026, 3, 20))}[
        "leaver"
    ] == "churned"
    assert (
        labels_as_of(store, APP, TZ, old_rules, date(2026, 3, 20)).labels[
            labels_as_of(store, APP, TZ, old_rules, date(2026, 3, 20)).persons.index("leaver")
        ]
        == "active"
    )


def test_interrupted_run_keeps_the_days_done(store: EventStore, state: sa.Engine) -> None:
    plan = plan_labels(store, state, SHOP, date(2026, 3, 1), date(2026, 3, 10), False)
    seen: list[date] = []

    def stop_after_three(day: object) -> None:
        seen.append(day.day)  # type: ignore[attr-defined]
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_labels(store, state, SHOP, plan, stop_after_three)
    kept = [d.day for d in label_counts(state, APP, date(2026, 3, 1), date(2026, 3, 10))]
    assert kept == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    rest, _ = label(store, state, date(2026, 3, 1), date(2026, 3, 10))
    assert (rest.compute_from, rest.compute_to) == (date(2026, 3, 4), date(2026, 3, 10))


# --------------------------------------------------------------------------- win-back


def test_quintile_scores_by_hand() -> None:
    import numpy as np

    population = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=float)
    # cut points (lower): 2, 4, 6, 8
    got = quintile_scores(np.array([1, 2, 3, 5, 8, 9, 100], dtype=float), population)
    assert got.tolist() == [1, 1, 2, 3, 4, 5, 5]


def test_winback_list_by_hand(store: EventStore, state: sa.Engine) -> None:
    entries = winback_list(store, state, SHOP, date(2026, 4, 20), 100)
    got = {e.person_id: e for e in entries}
    # on 04-20: loyal last active 03-31 (20 days: silent, established), leaver (churned),
    # late (churned: a new-type user gone 29 days), back (last active 03-28 after a first
    # visit on 03-01: established, 23 days away: silent)
    assert {p: e.label for p, e in got.items()} == {
        "loyal": "silent",
        "leaver": "churned",
        "late": "churned",
        "back": "silent",
    }
    leaver = got["leaver"]
    assert (leaver.orders, str(leaver.amount), leaver.days_inactive) == (1, "9.90", 41)
    # the only buyer, inactive ≥ 15 days → the seeds' 20-yuan coupon; the others never paid
    assert leaver.offer == "buyer_coupon"
    assert {got[p].offer for p in ("loyal", "late", "back")} == {"comeback_pack"}
    # RFM by hand: active days in the window 31, 10, 3, 4 (cut points 3, 4, 4, 10); days
    # since active 20, 41, 29, 23 (cut points 20, 23, 23, 29)
    assert (got["loyal"].f, got["leaver"].f, got["late"].f, got["back"].f) == (5, 4, 1, 2)
    assert (got["loyal"].r, got["leaver"].r, got["late"].r, got["back"].r) == (5, 1, 2, 4)
    assert (got["leaver"].m, got["loyal"].m) == (5, 1)
    assert got["late"].reason == "inactive:15-29" and got["late"].reason_en == "inactive 15–29 days"
    assert got["back"].reason == "inactive:15-29"
    # the leaver's churned label came with the preset's depth signal: the reason names it
    assert got["leaver"].reason == "signal:stopped_buying"
    assert got["leaver"].reason_zh == "有购买记录但 30 天未购买"
    rows = list(csv.DictReader(io.StringIO(winback_csv(entries))))
    assert [r["person_id"] for r in rows] == [e.person_id for e in entries]
    assert rows[0].keys() >= {"person_id", "label", "value", "reason", "offer", "amount"}


# --------------------------------------------------------------------------- API and CLI


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def shop(settings: Settings, client: TestClient) -> AppCredentials:
    creds = create_tenant(open_state(settings.state_store_url), "shop", TZ)
    rows = [e.raw() for e in EVENTS]
    r = client.post("/v1/batch", json=rows, headers={"Authorization": f"Bearer {creds.write_key}"})
    assert r.status_code == 200, r.text
    return creds


def test_lifecycle_api(client: TestClient, shop: AppCredentials) -> None:
    auth = {"Authorization": f"Bearer {shop.admin_token}"}
    base = f"/admin/v1/apps/{shop.app_id}"
    r = client.post(
        f"{base}/lifecycle/label", params={"from": "2026-03-01", "to": "2026-03-31"}, headers=auth
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["computed_days"] == 31 and len(body["days"]) == 31
    # loyal, leaver and back arrive on 03-01
    assert body["days"][0]["counts"] == {
        "new": 3,
        "active": 0,
        "resurrected": 0,
        "silent": 0,
        "churned": 0,
    }
    counts = client.get(
        f"{base}/lifecycle/counts", params={"from": "2026-03-31"}, headers=auth
    ).json()
    assert counts == [body["days"][-1]]
    users = client.get(
        f"{base}/lifecycle/users",
        params={"date": "2026-03-31", "label": "resurrected"},
        headers=auth,
    )
    assert [u["person_id"] for u in users.json()] == ["back"]
    history = client.get(f"{base}/lifecycle/users/back", headers=auth).json()["history"]
    assert [h["label"] for h in history] == ["new", "silent", "churned", "resurrected"]
    assert client.get(f"{base}/lifecycle/users/nobody", headers=auth).status_code == 404
    bad = client.post(
        f"{base}/lifecycle/label", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=auth
    )
    assert bad.status_code == 422 and "after" in bad.json()["detail"]
    assert (
        client.get(f"{base}/lifecycle/users", params={"label": "gone"}, headers=auth).status_code
        == 422
    )
    assert client.get(f"{base}/lifecycle/counts").status_code == 401
    wb = client.get(f"{base}/winback", params={"date": "2026-04-20", "format": "csv"}, headers=auth)
    assert wb.status_code == 200 and wb.headers["content-type"].startswith("text/csv")
    assert {r["person_id"] for r in csv.DictReader(io.StringIO(wb.text))} == {
        "loyal",
        "leaver",
        "late",
        "back",
    }


def test_lifecycle_and_winback_cli(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    new_app(env)
    loaded = cli(
        env, "import", write_jsonl(tmp_path / "e.jsonl", [e.raw() for e in EVENTS]), "--app", "shop"
    )
    assert loaded.returncode == 0, loaded.stderr
    out = cli_json(
        env, "lifecycle", "--app", "shop", "--from", "2026-03-01", "--to", "2026-03-31", "--json"
    )
    assert len(out["days"]) == 31 and out["days"][-1]["counts"]["resurrected"] == 1
    user = cli_json(
        env, "lifecycle", "--app", "shop", "--date", "2026-03-31", "--user", "back", "--json"
    )
    assert [h["label"] for h in user["history"]] == ["new", "silent", "churned", "resurrected"]
    table = cli(
        env, "winback", "--app", "shop", "--date", "2026-04-20", "--csv", str(tmp_path / "w.csv")
    )
    assert table.returncode == 0, table.stderr
    assert "召回" in table.stdout and (tmp_path / "w.csv").read_text().startswith("person_id,")
    bad = cli(env, "lifecycle", "--app", "shop", "--date", "March")
    assert bad.returncode == 2 and "--date" in bad.stderr
    both = cli(env, "lifecycle", "--app", "shop", "--date", "2026-03-01", "--from", "2026-03-01")
    assert both.returncode == 2
