"""Tags on users: manual ones an operator adds and removes (each change logged with who, when
and why), and rule tags, which the segment refresh keeps equal to their rule's members
(`engage.segments.rule_tags` in the playbook; docs/segments.md#tags).

Adding a tag a user has, or removing one they do not have, changes nothing and logs nothing,
so a retried request is harmless; both are single conditional statements, so two operators at
once cannot log one change twice.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.engage.segment_errors import SegmentError, bad_user_id
from liucun.state.db import write_transaction
from liucun.state.tables import engage_tag_log, engage_tags

TAG_PATTERN = re.compile(r"^[\w\-.:]{1,64}$")
USER_ID_MAX = 200
ACTOR_MAX = 200
NOTE_MAX = 500


def check_tag(tag: str) -> str:
    if not TAG_PATTERN.match(tag):
        raise SegmentError(
            "bad_tag",
            f"tag {tag!r} is invalid: 1–64 letters, digits, '_', '-', '.' or ':'",
            f"标签 {tag!r} 无效:须为 1–64 个字母、数字或 _ - . :",
            status=422,
        )
    return tag


def check_user(user_id: str) -> str:
    if not user_id or len(user_id) > USER_ID_MAX or user_id.strip() != user_id:
        raise bad_user_id(USER_ID_MAX)
    return user_id


def _not_a_rule_tag(tag: str, rule_tags: set[str]) -> None:
    if tag in rule_tags:
        raise SegmentError(
            "rule_tag",
            f"{tag!r} is a rule tag: the daily refresh gives and takes it by its rule "
            "(engage.segments.rule_tags in the playbook)",
            f"{tag!r} 是规则标签,由每日刷新按规则增减,不能手动修改",
        )


def _insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _log(
    conn: sa.Connection,
    app_id: str,
    user_id: str,
    tag: str,
    action: str,
    actor: str,
    now: datetime,
    note: str | None,
) -> None:
    conn.execute(
        engage_tag_log.insert().values(
            app_id=app_id,
            tag=tag,
            user_id=user_id,
            action=action,
            actor=actor[:ACTOR_MAX],
            note=note[:NOTE_MAX] if note else None,
            at=now,
        )
    )


def add_tag(
    engine: sa.Engine,
    app_id: str,
    user_id: str,
    tag: str,
    actor: str,
    now: datetime,
    rule_tags: set[str],
    note: str | None = None,
) -> bool:
    """Give `user_id` the manual tag; True if they did not have it (then the change is logged)."""
    check_user(user_id)
    check_tag(tag)
    _not_a_rule_tag(tag, rule_tags)
    with write_transaction(engine) as conn:
        row = {
            "app_id": app_id,
            "tag": tag,
            "user_id": user_id,
            "source": "manual",
            "added_by": actor[:ACTOR_MAX],
            "added_at": now,
        }
        statement = _insert(conn)(engage_tags).values(**row).on_conflict_do_nothing()
        added = conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount == 1
        if added:
            _log(conn, app_id, user_id, tag, "add", actor, now, note)
    return added


def remove_tag(
    engine: sa.Engine,
    app_id: str,
    user_id: str,
    tag: str,
    actor: str,
    now: datetime,
    rule_tags: set[str],
    note: str | None = None,
) -> bool:
    """Take the manual tag from `user_id`; True if they had it (then the change is logged)."""
    check_user(user_id)
    check_tag(tag)
    _not_a_rule_tag(tag, rule_tags)
    t = engage_tags
    with write_transaction(engine) as conn:
        removed = (
            conn.execute(
                t.delete().where(
                    t.c.app_id == app_id,
                    t.c.tag == tag,
                    t.c.user_id == user_id,
                    t.c.source == "manual",
                )
            ).rowcount
            == 1
        )
        if removed:
            _log(conn, app_id, user_id, tag, "remove", actor, now, note)
    return removed


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def user_tags(engine: sa.Engine, app_id: str, user_id: str) -> list[dict[str, Any]]:
    """The tags a user carries: tag, source (manual | rule), added_by, added_at."""
    t = engage_tags
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.tag, t.c.source, t.c.added_by, t.c.added_at)
            .where(t.c.app_id == app_id, t.c.user_id == user_id)
            .order_by(t.c.tag)
        ).all()
    return [
        {"tag": r.tag, "source": r.source, "added_by": r.added_by, "added_at": _utc(r.added_at)}
        for r in rows
    ]


def tag_counts(engine: sa.Engine, app_id: str) -> list[dict[str, Any]]:
    """Every tag in use: tag, source, users."""
    t = engage_tags
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.tag, t.c.source, sa.func.count().label("users"))
            .where(t.c.app_id == app_id)
            .group_by(t.c.tag, t.c.source)
            .order_by(t.c.tag, t.c.source)
        ).all()
    return [{"tag": r.tag, "source": r.source, "users": int(r.users)} for r in rows]


def tag_users(engine: sa.Engine, app_id: str, tag: str, limit: int = 1000) -> list[str]:
    t = engage_tags
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(t.c.user_id)
                .where(t.c.app_id == app_id, t.c.tag == tag)
                .order_by(t.c.user_id)
                .limit(limit)
            ).scalars()
        )


def tag_log(
    engine: sa.Engine,
    app_id: str,
    user_id: str | None = None,
    tag: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Manual tag changes, newest first: tag, user_id, action, actor, note, at."""
    t = engage_tag_log
    query = sa.select(t).where(t.c.app_id == app_id)
    if user_id is not None:
        query = query.where(t.c.user_id == user_id)
    if tag is not None:
        query = query.where(t.c.tag == tag)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.log_id.desc()).limit(limit)).mappings().all()
    return [
        {
            "tag": r["tag"],
            "user_id": r["user_id"],
            "action": r["action"],
            "actor": r["actor"],
            "note": r["note"],
            "at": _utc(r["at"]),
        }
        for r in rows
    ]


def set_rule_tag(
    conn: sa.Connection,
    app_id: str,
    tag: str,
    entered: list[str],
    left: list[str],
    now: datetime,
) -> None:
    """Give the rule tag to the users who entered its rule and take it from those who left
    (inside the refresh's transaction)."""
    t = engage_tags
    if left:
        conn.execute(
            t.delete().where(
                t.c.app_id == app_id,
                t.c.tag == tag,
                t.c.user_id == sa.bindparam("leaving"),
                t.c.source == "rule",
            ),
            [{"leaving": u} for u in left],
        )
    rows = [
        {
            "app_id": app_id,
            "tag": tag,
            "user_id": u,
            "source": "rule",
            "added_by": "rule",
            "added_at": now,
        }
        for u in entered
    ]
    if rows:
        conn.execute(_insert(conn)(t).on_conflict_do_nothing(), rows)
