"""Segments: named rules over an app's users, their preview, and their membership kept with
history (docs/segments.md).

- Named segments come from the playbook in force (`engage.segments.named`) and from the state
  store (saved by an operator); a saved segment of a playbook name takes the playbook's place.
- `evaluate_rule` gives the users a rule selects as of an app-local day (`evaluate`).
- A refresh evaluates a segment and applies the difference to its membership: a user who
  entered gets an open spell (`entered_at`), one who left has theirs closed (`left_at`); the
  refresh log keeps each refresh's size, entered and left. The difference is applied under the
  segment's lock row, so two refreshes at once apply one after the other and neither records
  a change twice. Rule tags are refreshed the same way (membership key `tag:NAME`) and their
  members carry the tag.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from liucun.engage.evaluate import Evaluator, matching_users
from liucun.engage.segment_errors import SegmentError, unknown_segment
from liucun.engage.segment_rules import Rule, RuleError, parse_rule, rule_json, rule_text
from liucun.engage.tags import set_rule_tag
from liucun.engage.traits import fetch_columns
from liucun.playbook.segments import SegmentRules
from liucun.playbook.store import playbook_in_force
from liucun.state.apps import App
from liucun.state.db import write_transaction
from liucun.state.tables import (
    campaigns,
    engage_segment_members,
    engage_segment_refreshes,
    engage_segment_state,
    engage_segments,
)
from liucun.warehouse.store import EventStore

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TAG_PREFIX = "tag:"
DESCRIPTION_MAX = 500
# traits shown beside each user of a preview's sample
KEY_TRAITS = (
    "lifecycle_label",
    "days_inactive",
    "age_days",
    "visits_30d",
    "orders_total",
    "rfm_value",
    "churn_risk",
    "churn_reason",
    "level",
    "points",
)


@dataclass(frozen=True)
class Segment:
    name: str
    rule: Rule
    source: Literal["playbook", "saved"]
    description: str | None
    created_at: datetime | None
    updated_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule": rule_json(self.rule),
            "source": self.source,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class RefreshReport:
    segment: str
    as_of: date
    refreshed_at: datetime
    size: int
    entered: int
    left: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _rules(engine: sa.Engine, app_id: str) -> tuple[SegmentRules, int]:
    """The playbook's segment section and RFM window (days) in force."""
    playbook = playbook_in_force(engine, app_id).playbook
    return playbook.engage.segments, playbook.winback.rfm_days


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _saved(engine: sa.Engine, app_id: str, name: str | None = None) -> list[Segment]:
    t = engage_segments
    query = sa.select(t).where(t.c.app_id == app_id)
    if name is not None:
        query = query.where(t.c.name == name)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.name)).mappings().all()
    return [
        Segment(
            r["name"],
            parse_rule(orjson.loads(r["rule"])),
            "saved",
            r["description"],
            _utc(r["created_at"]),
            _utc(r["updated_at"]),
        )
        for r in rows
    ]


def list_segments(engine: sa.Engine, app_id: str) -> list[Segment]:
    """Every named segment of the app: the playbook's and the saved ones, by name."""
    rules, _ = _rules(engine, app_id)
    found = {
        name: Segment(name, s.rule, "playbook", f"{s.zh} {s.en}", None, None)
        for name, s in rules.named.items()
    }
    found.update({s.name: s for s in _saved(engine, app_id)})
    return [found[n] for n in sorted(found)]


def find_segment(engine: sa.Engine, app: App | str, name: str) -> Segment:
    """The segment `name` of the app (a saved one before the playbook's); 404 if unknown."""
    app_id = app if isinstance(app, str) else app.app_id
    saved = _saved(engine, app_id, name)
    if saved:
        return saved[0]
    rules, _ = _rules(engine, app_id)
    if name in rules.named:
        s = rules.named[name]
        return Segment(name, s.rule, "playbook", f"{s.zh} {s.en}", None, None)
    raise unknown_segment(name)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise SegmentError(
            "bad_segment_name",
            f"segment name {name!r} is invalid: lowercase letters, digits and '_', starting "
            "with a letter (at most 40)",
            f"分群名 {name!r} 无效:须为小写字母、数字和下划线,以字母开头,最多 40 个字符",
            status=422,
        )
    return name


def rule_of(data: Any) -> Rule:
    """A rule from parsed JSON/YAML data; a 422 SegmentError listing the problems by path."""
    try:
        return parse_rule(data)
    except RuleError as exc:
        raise invalid_rule(exc) from None


def invalid_rule(exc: RuleError) -> SegmentError:
    return SegmentError(
        "invalid_rule",
        f"the rule is invalid: {exc}",
        "分群规则无效:" + ";".join(p.render() for p in exc.problems),
        status=422,
        problems=exc.as_json(),
    )


def _insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def save_segment(
    engine: sa.Engine,
    app_id: str,
    name: str,
    rule: Rule,
    now: datetime,
    description: str | None = None,
) -> Segment:
    """Save (create or replace) segment `name`; its membership history stays."""
    check_name(name)
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise SegmentError(
            "bad_description",
            f"a description is at most {DESCRIPTION_MAX} characters",
            f"描述最多 {DESCRIPTION_MAX} 个字符",
            status=422,
        )
    t = engage_segments
    with write_transaction(engine) as conn:
        statement = _insert(conn)(t).values(
            app_id=app_id,
            name=name,
            rule=rule_text(rule),
            description=description,
            created_at=now,
            updated_at=now,
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[t.c.app_id, t.c.name],
                set_={
                    "rule": statement.excluded.rule,
                    "description": description,
                    "updated_at": now,
                },
            )
        )
    return find_segment(engine, app_id, name)


def _campaigns_targeting(conn: sa.Connection, app_id: str, name: str) -> list[str]:
    """The names of the app's campaigns, not ended, whose target is segment `name`."""
    c = campaigns.c
    rows = conn.execute(
        sa.select(c.name, c.spec).where(c.app_id == app_id, c.status != "ended")
    ).all()
    found = []
    for campaign, spec in rows:
        target = orjson.loads(spec).get("target") or {}
        if target.get("kind") == "segment" and target.get("name") == name:
            found.append(campaign)
    return found


def delete_segment(engine: sa.Engine, app_id: str, name: str, now: datetime) -> None:
    """Delete saved segment `name`: its members' open spells end at `now` (the history and
    the refresh log stay). Refused (409) while a campaign that has not ended targets it;
    a playbook segment is not saved here (404: edit the playbook), and a saved one of the
    same name hid it, so the playbook's takes its place again."""
    with write_transaction(engine) as conn:
        t = engage_segments.c
        saved = conn.execute(
            sa.select(t.name).where(t.app_id == app_id, t.name == name).with_for_update()
        ).first()
        if saved is None:
            raise SegmentError(
                "unknown_saved_segment",
                f"no saved segment {name!r}; a playbook segment is removed by editing the playbook",
                f"没有已保存的分群 {name!r};运营手册里的分群请修改手册删除",
                status=404,
            )
        using = _campaigns_targeting(conn, app_id, name)
        if using:
            raise SegmentError(
                "segment_in_use",
                f"segment {name!r} is the target of campaign(s) {', '.join(using)}; end them first",
                f"分群 {name!r} 正被运营活动 {'、'.join(using)} 使用,请先结束这些活动",
                status=409,
            )
        conn.execute(engage_segments.delete().where(t.app_id == app_id, t.name == name))
        m = engage_segment_members.c
        conn.execute(
            engage_segment_members.update()
            .where(m.app_id == app_id, m.segment == name, m.left_at.is_(None))
            .values(left_at=now)
        )
        st = engage_segment_state.c
        conn.execute(engage_segment_state.delete().where(st.app_id == app_id, st.segment == name))


def _evaluator(store: EventStore, engine: sa.Engine, app: App, as_of: date) -> Evaluator:
    _, rfm_days = _rules(engine, app.app_id)
    return Evaluator(store, engine, app.app_id, app.timezone, as_of, rfm_days)


def evaluate_rule(
    store: EventStore, engine: sa.Engine, app: App, rule: Rule, as_of: date
) -> list[str]:
    """The sorted ids of the users `rule` selects as of app-local day `as_of` (profile
    attributes are brought up to date from the `$set` events first)."""
    ev = _evaluator(store, engine, app, as_of)
    return matching_users(ev, rule, sync_now=datetime.now(UTC))


def preview(
    store: EventStore,
    engine: sa.Engine,
    app: App,
    rule: Rule,
    as_of: date,
    sample: int | None = None,
) -> dict[str, Any]:
    """How many users `rule` selects as of `as_of`, out of how many, with a sample of them and
    their key traits (the same sample for the same members)."""
    rules, _ = _rules(engine, app.app_id)
    size = rules.sample_size if sample is None else sample
    ev = _evaluator(store, engine, app, as_of)
    matching_users(ev, rule, sync_now=datetime.now(UTC))
    mask = ev.mask(rule)
    chosen = np.flatnonzero(mask)
    if len(chosen) > size:
        rng = np.random.default_rng(len(chosen))
        chosen = np.sort(rng.choice(chosen, size=size, replace=False))
    users = ev.universe.users
    rows = []
    for i in chosen.tolist():
        traits = ev.traits.of_user(i)
        rows.append({"user_id": users[i].as_py(), **{k: traits[k] for k in KEY_TRAITS}})
    return {
        "as_of": as_of,
        "users": len(ev.universe),
        "count": int(mask.sum()),
        "rule": rule_json(rule),
        "sample": rows,
    }


def _lock_state(conn: sa.Connection, app_id: str, key: str) -> None:
    t = engage_segment_state
    conn.execute(
        _insert(conn)(t)
        .values(app_id=app_id, segment=key, as_of=None, refreshed_at=None, size=0)
        .on_conflict_do_nothing()
    )
    conn.execute(
        sa.select(t.c.size).where(t.c.app_id == app_id, t.c.segment == key).with_for_update()
    ).first()


def _open_members(conn: sa.Connection, app_id: str, key: str) -> set[str]:
    (users,) = fetch_columns(
        conn,
        "SELECT user_id FROM engage_segment_members WHERE app_id = {app} "
        "AND segment = {segment} AND left_at IS NULL",
        {"app": app_id, "segment": key},
        1,
    )
    return set(users)


def apply_membership(
    engine: sa.Engine,
    app_id: str,
    key: str,
    users: list[str],
    as_of: date,
    now: datetime,
    rule: str,
    seconds: float,
) -> RefreshReport:
    """Make `users` the members of segment (or `tag:NAME`) `key`, recording who entered and
    who left at `now`, and log the refresh."""
    m = engage_segment_members
    with write_transaction(engine) as conn:
        _lock_state(conn, app_id, key)
        current = _open_members(conn, app_id, key)
        wanted = set(users)
        entered = sorted(wanted - current)
        left = sorted(current - wanted)
        rows = [
            {"app_id": app_id, "segment": key, "user_id": u, "entered_at": now, "left_at": None}
            for u in entered
        ]
        if rows:
            conn.execute(m.insert(), rows)
        if left:
            # one statement a user, each found by the primary key (an IN list of thousands
            # would scan the segment's open spells once per list)
            conn.execute(
                m.update()
                .where(
                    m.c.app_id == app_id,
                    m.c.segment == key,
                    m.c.user_id == sa.bindparam("leaving"),
                    m.c.left_at.is_(None),
                )
                .values(left_at=now),
                [{"leaving": u} for u in left],
            )
        if key.startswith(TAG_PREFIX):
            set_rule_tag(conn, app_id, key.removeprefix(TAG_PREFIX), entered, left, now)
        s = engage_segment_state
        conn.execute(
            s.update()
            .where(s.c.app_id == app_id, s.c.segment == key)
            .values(as_of=as_of, refreshed_at=now, size=len(wanted))
        )
        report = RefreshReport(key, as_of, now, len(wanted), len(entered), len(left), seconds)
        conn.execute(
            engage_segment_refreshes.insert().values(
                app_id=app_id,
                segment=key,
                as_of=as_of,
                refreshed_at=now,
                rule=rule,
                size=report.size,
                entered=report.entered,
                left=report.left,
                seconds=round(seconds, 3),
            )
        )
    return report


def _refresh(
    ev: Evaluator, engine: sa.Engine, key: str, rule: Rule, now: datetime
) -> RefreshReport:
    began = time.perf_counter()
    users = matching_users(ev, rule)
    seconds = time.perf_counter() - began
    return apply_membership(engine, ev.app_id, key, users, ev.as_of, now, rule_text(rule), seconds)


def refresh_segment(
    store: EventStore, engine: sa.Engine, app: App, name: str, as_of: date, now: datetime
) -> RefreshReport:
    """Evaluate segment `name` (or rule tag `tag:NAME`) as of `as_of` and record who entered
    and left at `now`."""
    from liucun.engage.profiles import sync_attributes

    sync_attributes(store, engine, app.app_id, now)
    ev = _evaluator(store, engine, app, as_of)
    if name.startswith(TAG_PREFIX):
        rules, _ = _rules(engine, app.app_id)
        tag = rules.rule_tags.get(name.removeprefix(TAG_PREFIX))
        if tag is None:
            raise unknown_segment(name)
        return _refresh(ev, engine, name, tag.rule, now)
    return _refresh(ev, engine, name, find_segment(engine, app, name).rule, now)


def refresh_all(
    store: EventStore, engine: sa.Engine, app: App, as_of: date, now: datetime
) -> list[RefreshReport]:
    """Refresh every rule tag, then every named segment (segments may use the tags), sharing
    the users and traits between them (the daily job's `segments` step)."""
    from liucun.engage.profiles import sync_attributes

    sync_attributes(store, engine, app.app_id, now)
    rules, _ = _rules(engine, app.app_id)
    ev = _evaluator(store, engine, app, as_of)
    reports = [
        _refresh(ev, engine, TAG_PREFIX + name, tag.rule, now)
        for name, tag in rules.rule_tags.items()
    ]
    ev.forget()  # the tags just changed: the segments read them afresh
    for segment in list_segments(engine, app.app_id):
        reports.append(_refresh(ev, engine, segment.name, segment.rule, now))
    return reports


def segment_members(engine: sa.Engine, app_id: str, name: str) -> list[str]:
    """The current members of segment `name` (as of its last refresh), sorted."""
    m = engage_segment_members
    with engine.connect() as conn:
        users = conn.execute(
            sa.select(m.c.user_id)
            .where(m.c.app_id == app_id, m.c.segment == name, m.c.left_at.is_(None))
            .order_by(m.c.user_id)
        ).scalars()
        return list(users)


def refresh_state(engine: sa.Engine, app_id: str, name: str) -> dict[str, Any] | None:
    """The last refresh of segment `name`: as_of, refreshed_at, size (None: never refreshed)."""
    s = engage_segment_state
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(s.c.as_of, s.c.refreshed_at, s.c.size).where(
                s.c.app_id == app_id, s.c.segment == name
            )
        ).first()
    if row is None or row.refreshed_at is None:
        return None
    return {"as_of": row.as_of, "refreshed_at": _utc(row.refreshed_at), "size": row.size}


def refresh_log(
    engine: sa.Engine, app_id: str, name: str, limit: int = 100
) -> list[dict[str, Any]]:
    """The segment's refreshes, newest first."""
    r = engage_segment_refreshes
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.as_of, r.c.refreshed_at, r.c.size, r.c.entered, r.c.left, r.c.seconds)
            .where(r.c.app_id == app_id, r.c.segment == name)
            .order_by(r.c.refresh_id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "as_of": x.as_of,
            "refreshed_at": _utc(x.refreshed_at),
            "size": x.size,
            "entered": x.entered,
            "left": x.left,
            "seconds": x.seconds,
        }
        for x in rows
    ]


def member_spells(
    engine: sa.Engine, app_id: str, name: str, user_id: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Membership spells of the segment (of one user if given), newest first: user_id,
    entered_at, left_at (None: still a member)."""
    m = engage_segment_members
    query = sa.select(m.c.user_id, m.c.entered_at, m.c.left_at).where(
        m.c.app_id == app_id, m.c.segment == name
    )
    if user_id is not None:
        query = query.where(m.c.user_id == user_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(m.c.entered_at.desc(), m.c.user_id).limit(limit)).all()
    return [
        {"user_id": r.user_id, "entered_at": _utc(r.entered_at), "left_at": _utc(r.left_at)}
        for r in rows
    ]


def user_segments(engine: sa.Engine, app_id: str, user_id: str) -> list[dict[str, Any]]:
    """The segments (and rule tags, `tag:NAME`) a user is in now, with when they entered."""
    m = engage_segment_members
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.c.segment, m.c.entered_at)
            .where(m.c.app_id == app_id, m.c.user_id == user_id, m.c.left_at.is_(None))
            .order_by(m.c.segment)
        ).all()
    return [{"segment": r.segment, "entered_at": _utc(r.entered_at)} for r in rows]


def user_profile(
    store: EventStore, engine: sa.Engine, app: App, user_id: str, as_of: date, now: datetime
) -> dict[str, Any]:
    """A user's profile: attributes, traits as of `as_of`, tags and current segments."""
    from liucun.engage.profiles import sync_attributes, user_attributes
    from liucun.engage.tags import check_user, user_tags

    check_user(user_id)
    sync_attributes(store, engine, app.app_id, now)
    ev = _evaluator(store, engine, app, as_of)
    at = int(ev.universe.index_of(pa.array([user_id], pa.string()))[0])
    if at < 0:
        raise SegmentError(
            "unknown_user",
            f"no user {user_id!r} in app {app.name!r} by {as_of}",
            f"截至 {as_of},应用 {app.name!r} 中没有用户 {user_id!r}",
            status=404,
        )
    return {
        "user_id": user_id,
        "as_of": as_of,
        "attributes": user_attributes(engine, app.app_id, user_id),
        "traits": ev.traits.of_user(at),
        "tags": user_tags(engine, app.app_id, user_id),
        "segments": user_segments(engine, app.app_id, user_id),
    }


def sizes_between(engine: sa.Engine, app_id: str, first: date, last: date) -> dict[str, int]:
    """Each segment's (and rule tag's) size at its latest refresh as of a day in
    [first, last]; segments not refreshed in that range are left out."""
    r = engage_segment_refreshes
    latest = (
        sa.select(r.c.segment, sa.func.max(r.c.refresh_id).label("refresh_id"))
        .where(r.c.app_id == app_id, r.c.as_of >= first, r.c.as_of <= last)
        .group_by(r.c.segment)
        .subquery()
    )
    query = sa.select(r.c.segment, r.c.size).join(latest, latest.c.refresh_id == r.c.refresh_id)
    with engine.connect() as conn:
        return {row.segment: int(row.size) for row in conn.execute(query)}
