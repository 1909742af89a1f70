"""The `liucun` command as a user runs it: apps, import, count, export; with a server too."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq

from liucun.state.apps import AppCredentials, create_app
from liucun.state.db import open_state
from tests.server_helpers import cli, cli_json, liucun_env, make_event, server_process


def new_app(env: dict[str, str], name: str = "shop") -> AppCredentials:
    """An app made in-process in the default state store of the env's data dir (fast)."""
    data = Path(env["LIUCUN_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    engine = open_state(f"sqlite:///{data.resolve() / 'state.sqlite'}")
    try:
        return create_app(engine, name, "Asia/Shanghai")
    finally:
        engine.dispose()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(
        b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)
    )
    return path


def jsonl_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["event_id"] for line in path.read_bytes().splitlines() if line]


def count_of(env: dict[str, str], app: str) -> int:
    out = cli_json(env, "events", "count", "--app", app, "--json")
    return int(out["events"])


def test_apps_create_list_and_invalid_setting(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    created = cli_json(env, "apps", "create", "shop", "--tz", "Asia/Tokyo", "--json")
    assert created["timezone"] == "Asia/Tokyo"
    assert created["app_id"].startswith("app_") and created["admin_token"].startswith("at_")
    listed = cli_json(env, "apps", "list", "--json")
    assert listed == [{k: created[k] for k in ("app_id", "name", "timezone", "write_key")}]

    bad = cli(env | {"LIUCUN_TIMEZONE": "Mars/X"}, "apps", "list", "--json")
    assert bad.returncode != 0
    assert "LIUCUN_TIMEZONE" in bad.stderr and "Mars/X" in bad.stderr
    assert bad.stdout.strip() == ""


def test_import_count_and_export_without_a_server(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    app = new_app(env)
    good = [make_event(i) for i in range(20)]
    rows: list[Any] = [*good[:4], b'{"event_id": "broken', *good[4:10]]
    rows += [{"event_id": str(uuid.uuid4()), "event": "page_view", "page": "p"}]  # no user
    rows += good[10:]
    src = write_jsonl(tmp_path / "events.jsonl", rows)

    # by name, then by id
    first = cli_json(env, "import", src, "--app", app.name, "--json")
    assert first["rows"] == 22 and first["accepted"] == 20 and first["new"] == 20
    assert [line for line, _reason in first["rejected"]] == [5, 12]
    assert "JSON" in first["rejected"][0][1]
    again = cli_json(env, "import", src, "--app", app.app_id, "--json")
    assert again["accepted"] == 20 and again["new"] == 0

    csv_events = [make_event(100 + i) for i in range(5)]
    csv_path = tmp_path / "more.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["event_id", "event", "anonymous_id", "ts", "page", "color"])
        w.writeheader()
        for e in csv_events:
            w.writerow({k: e.get(k, "red") for k in w.fieldnames})
    from_csv = cli_json(env, "import", csv_path, "--app", app.name, "--json")
    assert from_csv["new"] == 5 and from_csv["rejected"] == []

    sent = {e["event_id"] for e in good + csv_events}
    assert count_of(env, app.app_id) == len(sent) == 25

    out = tmp_path / "out.jsonl"
    done = cli(env, "events", "export", "--app", app.name, out)
    assert done.returncode == 0, done.stderr
    ids = jsonl_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) == sent
    by_id = {r["event_id"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}
    assert by_id[csv_events[0]["event_id"]]["properties"] == {"color": "red"}

    parquet = tmp_path / "out.parquet"
    done = cli(env, "events", "export", "--app", app.app_id, parquet)
    assert done.returncode == 0, done.stderr
    pq_ids = [str(uuid.UUID(str(v))) for v in pq.read_table(parquet)["event_id"].to_pylist()]
    assert len(pq_ids) == len(set(pq_ids)) and set(pq_ids) == sent


def test_count_export_and_import_while_the_server_runs(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    app = new_app(env)
    over_http = [make_event(i) for i in range(30)]
    from_file = [make_event(100 + i) for i in range(10)]
    src = write_jsonl(tmp_path / "late.jsonl", from_file + over_http[:5])

    with server_process(env) as server:
        r = httpx.post(
            f"{server.url}/v1/batch",
            content=orjson.dumps(over_http),
            headers={"Authorization": f"Bearer {app.write_key}"},
            timeout=30.0,
        )
        assert r.status_code == 200 and r.json()["new"] == 30, r.text

        counted = cli(env, "events", "count", "--app", app.name, "--json")
        assert counted.returncode == 0, counted.stderr
        assert orjson.loads(counted.stdout)["events"] == 30
        assert "server" in counted.stderr  # it asked the server, not the locked file

        imported = cli_json(env, "import", src, "--app", app.name, "--json")
        assert imported["accepted"] == 15 and imported["new"] == 10

        out = tmp_path / "live.jsonl"
        done = cli(env, "events", "export", "--app", app.app_id, out)
        assert done.returncode == 0, done.stderr
        ids = jsonl_ids(out)
        assert len(ids) == len(set(ids))
        assert set(ids) == {e["event_id"] for e in over_http + from_file}


def test_migrate_events_to_clickhouse(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    app = new_app(env)
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    events = [
        make_event(i, ts=(t0 + timedelta(minutes=7 * i)).isoformat(), event="app_open")
        for i in range(120)
    ]
    # device-3 logs in as u-3: one person across both ids, on both stores
    events.append(
        make_event(3, event="identify", user_id="u-3", ts=(t0 + timedelta(days=1)).isoformat())
    )
    events.append(make_event(0, user_id="u-3", ts=(t0 + timedelta(days=2)).isoformat()))
    assert cli_json(
        env, "import", write_jsonl(tmp_path / "e.jsonl", events), "--app", app.name, "--json"
    )["new"] == len(events)
    users = tmp_path / "users.csv"
    users.write_text("user_id,created_at\nu-3,2026-10-01T00:00:00Z\n")
    assert cli(env, "import", "--users", users, "--app", app.name).returncode == 0

    target = f"chdb://{tmp_path / 'clickhouse'}?database=shop"
    report = cli_json(env, "migrate-events", "--app", app.name, "--to", target, "--json")
    assert report == {
        "app_id": app.app_id,
        "source_events": len(events),
        "new_in_target": len(events),
        "target_events": len(events),
        "users": 1,
    }
    # a rerun (after an interruption, say) copies nothing twice
    again = cli_json(env, "migrate-events", "--app", app.name, "--to", target, "--json")
    assert again["new_in_target"] == 0 and again["target_events"] == len(events)

    # served from the new store, the events and every figure are the same
    moved = {**env, "LIUCUN_EVENT_STORE": target}
    assert count_of(moved, app.name) == len(events)
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    assert cli(env, "events", "export", "--app", app.name, before).returncode == 0
    assert cli(moved, "events", "export", "--app", app.name, after).returncode == 0
    assert before.read_bytes() == after.read_bytes()
    for kind in ("active", "retention", "lifecycle"):
        args = (
            "metrics",
            kind,
            "--app",
            app.name,
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--json",
        )
        assert cli_json(moved, *args) == cli_json(env, *args)


def test_migrate_events_refuses_a_bad_target(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    app = new_app(env)
    done = cli(env, "migrate-events", "--app", app.name, "--to", "mysql://db/events")
    assert done.returncode == 2 and "clickhouse://host:8123/database" in done.stderr
    done = cli(env, "migrate-events", "--app", app.name, "--to", "chdb://memory/bad-name")
    assert done.returncode == 1 and "database name 'bad-name'" in done.stderr
