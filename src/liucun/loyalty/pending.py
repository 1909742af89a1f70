"""The queue between ingest and the loyalty reactions.

Ingest answers once a batch's events are stored and the events that loyalty rules react to
are queued here, in one insert committed before the answer; a drainer runs the reactions in
the background. Nothing accepted is lost: a batch leaves the queue only after its reactions
committed, and a drainer that dies mid-batch leaves it to be claimed again when its lease
ends. Running a batch twice awards nothing twice (every reaction is keyed by its event id),
so several servers may drain one queue; on PostgreSQL they skip each other's claimed rows.

On SQLite the queue lives in a file of its own beside the state store's (`state-reactions.sqlite`
for `state.sqlite`): SQLite has one writer per file, and ingest must not wait behind a
drainer's long reactions transaction to queue a batch.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from liucun.loyalty.members import as_utc
from liucun.loyalty.programme import Programme
from liucun.state.db import create_state_engine, write_transaction
from liucun.state.tables import pending_reactions

# how long a claimed batch stays with its drainer before another may take it
LEASE = timedelta(minutes=2)
# how many batches one claim takes; their reactions commit together per app and trust
CLAIM_BATCHES = 50
# batches react together up to this many events: on SQLite the one write lock is held that long
GROUP_EVENTS = 500
# a failing batch is tried again after 2, 4, 8 … seconds, at most this long
MAX_BACKOFF = timedelta(minutes=10)


_SIDE_FILES: weakref.WeakKeyDictionary[sa.Engine, sa.Engine] = weakref.WeakKeyDictionary()
_SIDE_FILES_LOCK = threading.Lock()


def queue_of(state: sa.Engine) -> sa.Engine:
    """The engine that holds the state store's reactions queue (module docstring)."""
    database = state.url.database
    if state.dialect.name != "sqlite" or not database or database == ":memory:":
        return state
    with _SIDE_FILES_LOCK:
        side = _SIDE_FILES.get(state)
        if side is None:
            path = Path(database)
            side = create_state_engine(
                f"sqlite:///{path.with_name(path.stem + '-reactions.sqlite')}"
            )
            pending_reactions.create(side, checkfirst=True)
            _SIDE_FILES[state] = side
    return side


@dataclass(frozen=True)
class Claimed:
    batch_id: int
    app_id: str
    trusted: bool
    received_at: datetime
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class QueueState:
    """What waits: batches and events, the oldest batch's arrival, and batches that failed."""

    batches: int
    events: int
    oldest: datetime | None
    failing: int
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "events": self.events,
            "oldest_received_at": self.oldest.isoformat() if self.oldest else None,
            "failing": self.failing,
            "last_error": self.last_error,
        }


def enqueue(
    engine: sa.Engine, app_id: str, events: list[dict[str, Any]], trusted: bool, now: datetime
) -> None:
    """Queue a stored batch's loyalty events (one row, committed on return)."""
    row = {
        "app_id": app_id,
        "trusted": trusted,
        "received_at": now,
        "events": orjson.dumps(events).decode(),
        "event_count": len(events),
        "attempts": 0,
        "next_try_at": now,
    }
    with write_transaction(queue_of(engine)) as conn:
        conn.execute(pending_reactions.insert().values(**row))


def _events_of(text: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = orjson.loads(text)
    for event in events:
        event["ts"] = datetime.fromisoformat(event["ts"])
    return events


def claim(engine: sa.Engine, now: datetime, limit: int = CLAIM_BATCHES) -> list[Claimed]:
    """Take up to `limit` due batches, oldest first, leasing them to the caller."""
    p = pending_reactions.c
    due = (
        sa.select(p.batch_id)
        .where(p.next_try_at <= now)
        .order_by(p.batch_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with write_transaction(queue_of(engine)) as conn:
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        conn.execute(
            pending_reactions.update()
            .where(p.batch_id.in_(ids))
            .values(next_try_at=now + LEASE, attempts=p.attempts + 1)
        )
        rows = conn.execute(
            sa.select(p.batch_id, p.app_id, p.trusted, p.received_at, p.events)
            .where(p.batch_id.in_(ids))
            .order_by(p.batch_id)
        ).all()
    return [
        Claimed(r.batch_id, r.app_id, bool(r.trusted), as_utc(r.received_at), _events_of(r.events))
        for r in rows
    ]


def finish(engine: sa.Engine, batch_ids: list[int]) -> None:
    """The batches' reactions committed: they leave the queue."""
    with write_transaction(queue_of(engine)) as conn:
        conn.execute(pending_reactions.delete().where(pending_reactions.c.batch_id.in_(batch_ids)))


def backoff(attempts: int) -> timedelta:
    """The wait before a batch that failed `attempts` times is tried again."""
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)


def fail(engine: sa.Engine, batch_ids: list[int], error: str, now: datetime) -> None:
    """The batches' reactions failed: keep them, say why, try again after a back-off."""
    p = pending_reactions.c
    with write_transaction(queue_of(engine)) as conn:
        attempts = dict(
            conn.execute(sa.select(p.batch_id, p.attempts).where(p.batch_id.in_(batch_ids))).all()
        )
        for batch_id, tries in attempts.items():
            conn.execute(
                pending_reactions.update()
                .where(p.batch_id == batch_id)
                .values(last_error=error[:2000], next_try_at=now + backoff(tries))
            )


def _groups(claimed: list[Claimed]) -> Iterator[list[Claimed]]:
    """Runs of consecutive batches of one app and one trust, which react in one transaction,
    of up to GROUP_EVENTS events (a larger batch alone)."""
    for _, run in groupby(claimed, key=lambda c: (c.app_id, c.trusted)):
        group: list[Claimed] = []
        events = 0
        for batch in run:
            if group and events + len(batch.events) > GROUP_EVENTS:
                yield group
                group, events = [], 0
            group.append(batch)
            events += len(batch.events)
        yield group


ProgrammeOf = Callable[[str], Programme | None]


def drain(
    engine: sa.Engine,
    programme_of: ProgrammeOf,
    clock: Callable[[], datetime],
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Run the reactions of every due batch (until `stopping()`); the number of batches that
    left the queue.

    A group's awards carry the latest arrival time of its batches as their time. A batch of
    an app that no longer exists leaves the queue unrun; a failing group stays, backed off.
    """
    from liucun.loyalty.reactions import react  # reactions import the programme's rules

    done = 0
    while not stopping() and (claimed := claim(engine, clock())):
        for group in _groups(claimed):
            ids = [c.batch_id for c in group]
            try:
                prog = programme_of(group[0].app_id)
                if prog is not None:
                    events = [e for c in group for e in c.events]
                    react(engine, prog, events, group[0].trusted, group[-1].received_at)
            except Exception as exc:  # kept for the next try; the queue's state tells why
                fail(engine, ids, f"{type(exc).__name__}: {exc}", clock())
                continue
            finish(engine, ids)
            done += len(ids)
    return done


def queue_state(engine: sa.Engine, app_id: str | None = None) -> QueueState:
    """The queue of one app (or of all apps)."""
    p = pending_reactions.c
    where = [p.app_id == app_id] if app_id is not None else []
    with queue_of(engine).connect() as conn:
        row = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(p.event_count), 0),
                sa.func.min(p.received_at),
                sa.func.count(p.last_error),
            ).where(*where)
        ).one()
        last = conn.execute(
            sa.select(p.last_error)
            .where(p.last_error.is_not(None), *where)
            .order_by(p.batch_id.desc())
            .limit(1)
        ).scalar()
    oldest = as_utc(row[2]) if row[2] is not None else None
    return QueueState(int(row[0]), int(row[1]), oldest, int(row[3]), last)
