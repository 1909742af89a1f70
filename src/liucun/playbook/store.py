"""An app's playbook revisions in the state store: apply one, the one in force, history, diffs.

Applying a text stores it as the app's next revision (1, 2, …) once it validates; a text that
does not validate is never stored, so the last good revision stays in force. Revision 0 is the
shipped default, in force until the first apply.
"""

from __future__ import annotations

import difflib
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa

from liucun.playbook.load import (
    PlaybookError,
    default_playbook,
    default_text,
    join_path,
    parse_playbook,
)
from liucun.playbook.schema import Playbook
from liucun.state.tables import apps, playbook_revisions

NOTE_MAX_CHARS = 500
# Concurrent applies on SQLite find the revision number taken (or the file busy) and try again.
APPLY_ATTEMPTS = 10


@dataclass(frozen=True)
class InForce:
    """The playbook an app's rules read now: `revision` 0 is the shipped default. `warning`
    says why it is not the newest stored revision, when it is not."""

    revision: int
    playbook: Playbook
    text: str
    created_at: datetime | None
    warning: str | None = None


@dataclass(frozen=True)
class Revision:
    revision: int
    sha256: str
    created_at: datetime
    note: str | None


@dataclass(frozen=True)
class Applied:
    """The revision in force after an apply; `created` is False when the text was in force
    already (a retried apply) and nothing was stored."""

    revision: int
    created: bool


@dataclass(frozen=True)
class Change:
    """One setting that differs: `path` as in `churn.presets.food.established.silent_after_days`
    (list items as `[index]`, or `[name]` where items have names). `added`/`removed` carry the
    whole value that appeared or went, on one side."""

    path: str
    old: Any
    new: Any
    kind: Literal["changed", "added", "removed"] = "changed"


def sha256_of(text: str) -> str:
    """The SHA-256 of the text's UTF-8 bytes, in hex: how revisions are told apart."""
    return hashlib.sha256(text.encode()).hexdigest()


def apply_playbook(engine: sa.Engine, app_id: str, text: str, note: str | None = None) -> int:
    """Put `text` in force for the app and return its revision; see `record_playbook`."""
    return record_playbook(engine, app_id, text, note).revision


def record_playbook(
    engine: sa.Engine, app_id: str, text: str, note: str | None = None, source: str = "playbook"
) -> Applied:
    """Validate `text` (PlaybookError, nothing stored, if it is broken) and store it as the
    app's next revision; a text identical to the newest revision stores nothing and answers
    that revision, so a retried apply is harmless. `source` names the text in problems."""
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise ValueError(f"the note has {len(note)} characters; at most {NOTE_MAX_CHARS}")
    parse_playbook(text, source)
    digest = sha256_of(text)
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            return _record(engine, app_id, text, digest, note)
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
            if attempt == APPLY_ATTEMPTS or not _lost_race(engine, app_id, exc):
                raise
        # another apply took the number (or holds SQLite's write lock): read again, retry
        time.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")


def _lock_key(app_id: str) -> int:
    digest = hashlib.blake2b(b"liucun-playbook:" + app_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _record(engine: sa.Engine, app_id: str, text: str, digest: str, note: str | None) -> Applied:
    t = playbook_revisions.c
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # applies of one app take turns: the next number is read and used in one step
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(app_id)})
        newest = conn.execute(
            sa.select(t.revision, t.sha256)
            .where(t.app_id == app_id)
            .order_by(t.revision.desc())
            .limit(1)
        ).first()
        if newest is not None and newest.sha256 == digest:
            return Applied(newest.revision, created=False)
        revision = (newest.revision if newest is not None else 0) + 1
        conn.execute(
            sa.insert(playbook_revisions).values(
                app_id=app_id,
                revision=revision,
                text=text,
                sha256=digest,
                created_at=datetime.now(UTC),
                note=note,
            )
        )
    return Applied(revision, created=True)


def _lost_race(engine: sa.Engine, app_id: str, exc: Exception) -> bool:
    """Whether `exc` came from a concurrent apply (a taken revision number, SQLite busy), not
    from a fault a retry cannot mend (an unknown app, an unreachable server)."""
    if isinstance(exc, sa.exc.OperationalError):
        return engine.dialect.name == "sqlite" and "locked" in str(exc)
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(apps.c.app_id).where(apps.c.app_id == app_id)).first()
            is not None
        )


@lru_cache(maxsize=64)
def _parsed(text: str) -> Playbook:
    return parse_playbook(text)


def playbook_in_force(engine: sa.Engine, app_id: str) -> InForce:
    """The app's playbook in force: its newest stored revision that validates, else the shipped
    default. It never fails on a stored text that no longer validates (the schema changed since
    it was applied): it falls back, and `warning` says so."""
    t = playbook_revisions.c
    query = (
        sa.select(t.revision, t.text, t.created_at)
        .where(t.app_id == app_id)
        .order_by(t.revision.desc())
    )
    with engine.connect() as conn:
        newest = conn.execute(query.limit(1)).first()
        if newest is None:
            return InForce(0, default_playbook(), default_text(), None)
        try:
            return InForce(
                newest.revision, _parsed(newest.text), newest.text, _utc(newest.created_at)
            )
        except PlaybookError as exc:
            broken = f"revision {newest.revision} no longer validates ({exc.problems[0].message})"
        for row in conn.execute(query.offset(1)):
            try:
                playbook = _parsed(row.text)
            except PlaybookError:
                continue
            warning = f"{broken}; revision {row.revision} is in force"
            return InForce(row.revision, playbook, row.text, _utc(row.created_at), warning)
    warning = f"{broken}, nor does any earlier one; the shipped default is in force"
    return InForce(0, default_playbook(), default_text(), None, warning)


def playbook_history(engine: sa.Engine, app_id: str) -> list[Revision]:
    """The app's stored revisions, newest first."""
    t = playbook_revisions.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.revision, t.sha256, t.created_at, t.note)
            .where(t.app_id == app_id)
            .order_by(t.revision.desc())
        ).all()
    return [Revision(r.revision, r.sha256, _utc(r.created_at), r.note) for r in rows]


def playbook_text(engine: sa.Engine, app_id: str, revision: int) -> str | None:
    """The text of one revision as applied (0: the shipped default); None if there is none."""
    if revision == 0:
        return default_text()
    t = playbook_revisions.c
    with engine.connect() as conn:
        text: str | None = conn.execute(
            sa.select(t.text).where((t.app_id == app_id) & (t.revision == revision))
        ).scalar()
    return text


def _utc(value: datetime) -> datetime:
    # SQLite hands back the stored UTC time without its zone
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def playbook_changes(old: Playbook, new: Playbook) -> list[Change]:
    """Every setting (leaf) whose value differs between two playbooks, in document order.
    Defaults count as written: a file that spells out a default changes nothing."""
    changes: list[Change] = []
    _walk("", old.model_dump(mode="json"), new.model_dump(mode="json"), changes)
    return changes


def _walk(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, list) and isinstance(new, list):
        if _named(old) and _named(new):
            # matched by name: moving or inserting a signal changes only that signal
            old, new = ({i["name"]: i for i in items} for items in (old, new))
            _walk_items(path, old, new, out, lambda p, k: f"{p}[{k}]")
        else:
            _walk_items(path, dict(enumerate(old)), dict(enumerate(new)), out, join_path)
    elif isinstance(old, dict) and isinstance(new, dict):
        _walk_items(path, old, new, out, join_path)
    else:
        out.append(Change(path, old, new))


def _walk_items(
    path: str,
    old: dict[Any, Any],
    new: dict[Any, Any],
    out: list[Change],
    join: Callable[[str, Any], str],
) -> None:
    for key in [*old, *(k for k in new if k not in old)]:
        at = join(path, key)
        if key not in new:
            out.append(Change(at, old[key], None, "removed"))
        elif key not in old:
            out.append(Change(at, None, new[key], "added"))
        else:
            _walk(at, old[key], new[key], out)


def _named(items: list[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, dict)]
    return (
        len(names) == len(items)
        and all(isinstance(n, str) for n in names)
        and len(set(names)) == len(names)
    )


def unified_diff(
    old_text: str, new_text: str, old_name: str = "in force", new_name: str = "new"
) -> str:
    """The line-by-line difference of two playbook texts (comments included), as `diff -u`."""

    def lines(text: str) -> list[str]:
        return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(True)]

    return "".join(difflib.unified_diff(lines(old_text), lines(new_text), old_name, new_name))
