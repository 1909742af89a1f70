"""The server's clock for daily runs: after `daily_at` app-local time, each app's previous day
is run once (claimed in the state store, so one of several servers runs it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from liucun.schedule.claims import claim, finish
from liucun.schedule.daily import run_daily
from liucun.state.apps import App, list_apps
from liucun.warehouse.store import EventStore

log = logging.getLogger("liucun.schedule")
DAILY_JOB = "daily"


def due_day(app: App, at: time, now: datetime) -> date | None:
    """The app-local day whose daily run is due at `now`: yesterday, once `at` has passed
    today in the app's time zone; None before that."""
    local = now.astimezone(ZoneInfo(app.timezone))
    if local.time() < at:
        return None
    return local.date() - timedelta(days=1)


def run_due(
    store: EventStore, state: sa.Engine, at: time, now: datetime | None = None
) -> list[tuple[str, date, bool]]:
    """Run the daily job of every app that is due and not yet run (by anyone) for its day;
    (app id, day, ok) of each run this call made."""
    now = now or datetime.now(UTC)
    ran = []
    for app in list_apps(state):
        day = due_day(app, at, now)
        if day is None or not claim(state, app.app_id, DAILY_JOB, day, now):
            continue
        report = run_daily(store, state, app, day)
        finish(state, app.app_id, DAILY_JOB, day, report.ok, report.steps)
        log.info("daily run of %s for %s: %s", app.name, day, report.steps)
        ran.append((app.app_id, day, report.ok))
    return ran


class DailyScheduler:
    """A background thread that calls `run_due` every `interval` seconds until stopped."""

    def __init__(
        self,
        store: EventStore,
        state: sa.Engine,
        at: time,
        interval: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._args = (store, state, at)
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="liucun-daily", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due(*self._args, now=self._clock())
            except Exception:  # a bad tick is logged; the next one tries again
                log.exception("daily scheduler tick failed")
            self._stop.wait(self._interval)
