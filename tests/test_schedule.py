"""The daily job: claims that let one of several servers run a day, the clock that says when a
day is due, and the run itself (labels, risk, alerts) through the scheduler and the CLI."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from liucun.config import Settings, parse_daily_at
from liucun.lifecycle.label_history import label_counts
from liucun.schedule.claims import STALE_AFTER, claim, finish, job_runs_of
from liucun.schedule.daily import STEPS
from liucun.schedule.scheduler import DailyScheduler, due_day, run_due
from liucun.state.apps import App, create_app
from liucun.state.db import open_state
from liucun.warehouse.duckdb_store import DuckDBEventStore
from tests.server_helpers import cli, cli_json, liucun_env
from tests.test_cli import new_app, write_jsonl
from tests.test_lifecycle_job import EVENTS

DAY = date(2026, 3, 31)


@pytest.fixture
def state(state_url: str) -> sa.Engine:
    return open_state(state_url)


def shop(state: sa.Engine, tz: str = "Asia/Shanghai") -> App:
    creds = create_app(state, "shop", tz)
    return App(creds.app_id, "shop", tz, creds.write_key)


def test_one_claim_per_day_and_failed_runs_are_taken_again(state: sa.Engine) -> None:
    app = shop(state)
    assert claim(state, app.app_id, "daily", DAY)
    assert not claim(state, app.app_id, "daily", DAY)
    assert claim(state, app.app_id, "daily", DAY + timedelta(days=1))  # another day
    finish(state, app.app_id, "daily", DAY, ok=False, detail={"labels": "boom"})
    assert claim(state, app.app_id, "daily", DAY)  # a failed run may be run again
    finish(state, app.app_id, "daily", DAY, ok=True, detail={"labels": "ok"})
    assert not claim(state, app.app_id, "daily", DAY)  # done is done
    runs = job_runs_of(state, app.app_id)
    assert [(r.day, r.status) for r in runs] == [
        (DAY + timedelta(days=1), "running"),
        (DAY, "done"),
    ]
    assert runs[1].detail == {"labels": "ok"}
    # a run still "running" long after it started died with its process
    later = datetime.now(UTC) + STALE_AFTER + timedelta(minutes=1)
    assert claim(state, app.app_id, "daily", DAY + timedelta(days=1), now=later)


def test_concurrent_claims_give_the_day_to_one(state: sa.Engine) -> None:
    app = shop(state)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        results.append(claim(state, app.app_id, "daily", DAY))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_a_day_is_due_after_the_local_hour() -> None:
    app = App("a", "shop", "Asia/Shanghai", "wk")
    at = parse_daily_at("02:00")
    assert at == time(2, 0)
    # 01:59 on 04-01 in Shanghai is 17:59 UTC on 03-31: not yet
    assert due_day(app, at, datetime(2026, 3, 31, 17, 59, tzinfo=UTC)) is None
    assert due_day(app, at, datetime(2026, 3, 31, 18, 0, tzinfo=UTC)) == DAY
    assert parse_daily_at("off") is None
    with pytest.raises(ValueError, match="02:00"):
        parse_daily_at("2am")
    with pytest.raises(ValueError, match="LIUCUN_DAILY_AT"):
        from liucun.config import load_settings

        load_settings(daily_at="25:99")


def test_the_scheduler_runs_each_due_day_once(state: sa.Engine, tmp_path: Path) -> None:
    from liucun.events.batch import validate_events

    app = shop(state)
    store = DuckDBEventStore(str(tmp_path / "events.duckdb"))
    batch = validate_events([e.raw() for e in EVENTS], app.app_id, datetime(2026, 4, 1, tzinfo=UTC))
    store.append(batch.table, {app.app_id: app.timezone})
    now = datetime(2026, 3, 31, 18, 30, tzinfo=UTC)  # 02:30 on 04-01 in Shanghai
    try:
        assert run_due(store, state, time(2, 0), now) == [(app.app_id, DAY, True)]
        assert run_due(store, state, time(2, 0), now) == []  # claimed and done
        (run,) = job_runs_of(state, app.app_id)
        assert run.status == "done" and set(run.detail) == set(STEPS)
        assert run.detail["risk"]["status"] == "skipped"  # 4 users: too few to train
        assert run.detail["labels"]["counts"]["resurrected"] == 1
        assert [d.day for d in label_counts(state, app.app_id, DAY, DAY)] == [DAY]
        # the thread: started, it runs the next day's job at its first tick, then stops
        ticks = iter([now + timedelta(days=1)] + [now + timedelta(days=1)] * 100)
        scheduler = DailyScheduler(
            store, state, time(2, 0), interval=0.05, clock=lambda: next(ticks)
        )
        scheduler.start()
        for _ in range(200):
            if len(job_runs_of(state, app.app_id)) == 2:
                break
            threading.Event().wait(0.05)
        scheduler.stop()
        assert [r.day for r in job_runs_of(state, app.app_id)] == [DAY + timedelta(days=1), DAY]
    finally:
        store.close()


def test_daily_cli(tmp_path: Path) -> None:
    env = liucun_env(tmp_path)
    new_app(env)
    events = write_jsonl(tmp_path / "e.jsonl", [e.raw() for e in EVENTS])
    assert cli(env, "import", events, "--app", "shop").returncode == 0
    (first,) = cli_json(env, "daily", "--app", "shop", "--date", "2026-03-31", "--json")
    assert first["ran"] and first["steps"]["labels"]["status"] == "done"
    assert first["steps"]["risk"]["status"] == "skipped"
    assert "min_training_persons" in first["steps"]["risk"]["reason"]
    (again,) = cli_json(env, "daily", "--app", "shop", "--date", "2026-03-31", "--json")
    assert again == {"app_id": first["app_id"], "day": "2026-03-31", "ran": False}
    (forced,) = cli_json(env, "daily", "--all", "--date", "2026-03-31", "--force", "--json")
    assert forced["ran"]
    assert cli(env, "daily", "--date", "2026-03-31").returncode == 2  # neither --app nor --all
    assert cli(env, "daily", "--app", "shop", "--date", "soon").returncode == 2


def test_settings_default_runs_daily_at_two() -> None:
    assert Settings().daily_at == "02:00"
