"""Job claims in the state store: one server runs an app's job for a day, even when several
servers share the state store (the primary key decides; a claim left by a crashed run goes
stale and may be taken again)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from liucun.state.tables import job_runs

# a run still "running" after this long died with its process: its claim may be taken
STALE_AFTER = timedelta(hours=6)


@dataclass(frozen=True)
class JobRun:
    app_id: str
    job: str
    day: date
    status: str
    started_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any]


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they were written in UTC
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def claim(engine: sa.Engine, app_id: str, job: str, day: date, now: datetime | None = None) -> bool:
    """Take the run of `job` for `app_id` on `day`: True for the one caller that gets it.

    A failed run, or one still running after STALE_AFTER, is taken over; a done one never."""
    now = now or datetime.now(UTC)
    t = job_runs
    key = sa.and_(t.c.app_id == app_id, t.c.job == job, t.c.day == day)
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.c.status, t.c.started_at).where(key)).first()
    if row is None:
        try:
            with engine.begin() as conn:
                conn.execute(
                    t.insert().values(
                        app_id=app_id,
                        job=job,
                        day=day,
                        status="running",
                        started_at=now,
                        detail="{}",
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True
    if row.status == "done" or (
        row.status == "running" and _utc(row.started_at) > now - STALE_AFTER
    ):
        return False
    with engine.begin() as conn:
        # only if nobody took it over since it was read
        taken = conn.execute(
            t.update()
            .where(key, t.c.status == row.status, t.c.started_at == row.started_at)
            .values(status="running", started_at=now, finished_at=None, detail="{}")
        ).rowcount
    return bool(taken)


def finish(
    engine: sa.Engine, app_id: str, job: str, day: date, ok: bool, detail: dict[str, Any]
) -> None:
    """Record the end of a claimed run; a failed one may be claimed again."""
    t = job_runs
    with engine.begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.app_id == app_id, t.c.job == job, t.c.day == day)
            .values(
                status="done" if ok else "failed",
                finished_at=datetime.now(UTC),
                detail=json.dumps(detail, default=str),
            )
        )


def job_runs_of(engine: sa.Engine, app_id: str, limit: int = 30) -> list[JobRun]:
    """The app's latest runs, newest first."""
    t = job_runs
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.app_id == app_id).order_by(t.c.day.desc(), t.c.job).limit(limit)
        ).all()
    return [
        JobRun(r.app_id, r.job, r.day, r.status, r.started_at, r.finished_at, json.loads(r.detail))
        for r in rows
    ]
