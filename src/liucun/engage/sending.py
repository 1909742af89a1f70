"""Send decisions: whether a scenario's message may go to a user now, later, or not at all.

A message is sent only with consent — a one-time credit for its template, or a long-term
subscription where the playbook allows one — within the user's frequency caps, and outside the
quiet hours; otherwise it is recorded as skipped with the reason. Decisions are made in sets:
one transaction per chunk of requests locks the chunk's users' subscriptions and cap counts
(FOR UPDATE in user order on PostgreSQL; SQLite's single writer), decides every request in
memory against those locked figures, and writes the new credits, counts and messages back
together. So credits and cap slots hold across campaigns and under any concurrency, and a
100 000-user campaign is a few statements per chunk, not a transaction per user.

Each request is decided once per message key: the same key again answers the first decision
and changes nothing. The checks, in order, with the skip reason each gives:

1. the scenario has a template with a platform id (`no_template`);
2. the user is not in the app's global control group (`global_control`: a safety net — the
   campaigns never ask; engage/holdout.py);
3. a channel of the scenario has an account for the app (`no_channel_account`);
4. consent on that channel, trying the scenario's templates in order: `no_consent` (never
   answered), `rejected` (always-reject, banned, or a reject with no credit left), `revoked`
   (the platform refused a send: 43101), `no_credit` (accepted before, credits used up);
   webhook templates need no platform consent;
5. the template's fields can be filled from the request's data (`missing_data`);
6. the caps of the day and then the month the message will go out in (`cap_day`, `cap_month`).

A decision inside the quiet hours is `held` with `send_after` at the window's end; its credit
and cap slots are taken at decision time. Otherwise it is `queued`, due at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa

from liucun.engage.bulk import db_value, insert_rows, mark, select_in
from liucun.engage.caps import cap_periods, lock_caps, write_caps
from liucun.engage.channels.accounts import configured_channels
from liucun.engage.consent import lock_subscriptions, write_credits
from liucun.engage.message_errors import MessageError
from liucun.engage.quiet_hours import quiet_until
from liucun.loyalty.members import as_utc
from liucun.playbook.messages import ChannelTemplate, MessageRules, placeholders
from liucun.state.apps import App
from liucun.state.db import write_transaction
from liucun.state.tables import engage_messages

KEY_MAX = 200
SCENARIO_MAX = 40
CAMPAIGN_MAX = 40
# requests decided per transaction: short enough that other writers are not kept waiting long
CHUNK = 5_000
ATTEMPTS = 5
MESSAGE_COLUMNS = tuple(c.name for c in engage_messages.columns)


@dataclass(frozen=True)
class SendRequest:
    """A scenario's message for a user. `key` identifies the message (e.g.
    f"{campaign_id}:{user_id}:{day}"); `data` fills the template's `{name}` placeholders;
    `page` overrides the page the message opens."""

    user_id: str
    scenario: str
    key: str
    campaign_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    page: str | None = None


@dataclass(frozen=True)
class Decision:
    """`status`: queued (due at once), held (due at `send_after`, the end of the quiet hours)
    or skipped (`reason` says why). `replayed`: the key was decided before; this is that
    decision."""

    key: str
    user_id: str
    status: str
    reason: str | None
    send_after: datetime | None
    channel: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class _Context:
    app_id: str
    rules: MessageRules
    control_share: float
    accounts: frozenset[str]
    send_after: datetime
    held: bool
    day: str
    month: str
    now: datetime


def _check(request: SendRequest) -> None:
    problems = []
    if not request.key or len(request.key) > KEY_MAX:
        problems.append(f"key: 1–{KEY_MAX} characters")
    if not request.user_id or len(request.user_id) > 200:
        problems.append("user_id: 1–200 characters")
    if not request.scenario or len(request.scenario) > SCENARIO_MAX:
        problems.append(f"scenario: 1–{SCENARIO_MAX} characters")
    if request.campaign_id is not None and not 1 <= len(request.campaign_id) <= CAMPAIGN_MAX:
        problems.append(f"campaign_id: 1–{CAMPAIGN_MAX} characters")
    if problems:
        raise MessageError(
            "bad_send_request",
            f"send request {request.key!r}: " + "; ".join(problems),
            f"发送请求 {request.key!r} 无效:" + ";".join(problems),
            status=422,
        )


def render(template: ChannelTemplate, data: dict[str, Any]) -> dict[str, str] | None:
    """The template's fields filled from `data`; None when a placeholder has no value."""
    out = {}
    for name, text in template.fields.items():
        needed = placeholders(text)
        if any(data.get(n) is None for n in needed):
            return None
        out[name] = text.format_map({n: data[n] for n in needed})
    return out


def _candidates(ctx: _Context, request: SendRequest) -> tuple[str | None, list[ChannelTemplate]]:
    """The templates the request may use, or the reason none can be (checks 1–3)."""
    from liucun.engage.holdout import in_global_control

    scenario = ctx.rules.templates.get(request.scenario)
    templates = [t for t in scenario.channels if t.template_id] if scenario else []
    if not templates:
        return "no_template", []
    if ctx.control_share and in_global_control(ctx.app_id, request.user_id, ctx.control_share):
        return "global_control", []
    templates = [t for t in templates if t.channel in ctx.accounts]
    if not templates:
        return "no_channel_account", []
    return None, templates


def consent_reason(row: dict[str, Any] | None, template: ChannelTemplate) -> tuple[str, str]:
    """("ok", credit kind) or ("skip", reason) for sending `template` under subscription `row`
    (check 4)."""
    if template.channel == "webhook":
        return "ok", "none"
    if row is None or row["status"] == "none":
        return "skip", "no_consent"
    if row["status"] in ("always_rejected", "banned"):
        return "skip", "rejected"
    if template.subscription == "long_term" and row["long_term"]:
        return "ok", "long_term"
    if row["credits"] > 0:
        return "ok", "one_time"
    if row["status"] in ("rejected", "revoked"):
        return "skip", "rejected" if row["status"] == "rejected" else "revoked"
    return "skip", "no_credit"


def _from_db(value: Any) -> datetime | None:
    """A time read through the driver (SQLite: text) as an aware UTC time."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _first_decision(row: tuple[Any, ...]) -> Decision:
    """The decision a stored message was given (its status may have moved on since)."""
    key, user_id, status, reason, send_after, decided_at, channel = row
    send_after, decided_at = _from_db(send_after), _from_db(decided_at)
    if status == "skipped":
        return Decision(key, user_id, "skipped", reason, None, channel, True)
    assert decided_at is not None
    held = send_after is not None and send_after > decided_at
    return Decision(key, user_id, "held" if held else "queued", None, send_after, channel, True)


def _existing(conn: sa.Connection, app_id: str, keys: Sequence[str]) -> dict[str, Decision]:
    sql = (
        "SELECT message_key, user_id, status, reason, send_after, decided_at, channel "
        f"FROM engage_messages WHERE app_id = {mark(conn)} AND message_key IN ({{in}})"
    )
    rows = select_in(conn, sql, [app_id], sorted(set(keys)))
    return {row[0]: _first_decision(row) for row in rows}


def _message_row(ctx: _Context, request: SendRequest, reason: str | None) -> dict[str, Any]:
    return {
        "app_id": ctx.app_id,
        "message_key": request.key,
        "user_id": request.user_id,
        "scenario": request.scenario,
        "campaign_id": request.campaign_id,
        "status": "skipped" if reason else ("held" if ctx.held else "queued"),
        "reason": reason,
        "channel": None,
        "template_id": None,
        "recipient": None,
        "page": None,
        "data": None,
        "credit": None,
        "cap_day": None,
        "cap_month": None,
        "decided_at": ctx.now,
        "send_after": None if reason else ctx.send_after,
        "claimed_at": None,
        "attempts": 0,
        "finished_at": None,
        "error": None,
    }


class _Chunk:
    """One transaction's decisions over the locked figures of its users."""

    def __init__(self, conn: sa.Connection, ctx: _Context, requests: Sequence[SendRequest]):
        self.ctx = ctx
        self.plans = [(r, *_candidates(ctx, r)) for r in requests]
        users = sorted({r.user_id for r, reason, _ in self.plans if reason is None})
        self.subs = lock_subscriptions(conn, ctx.app_id, users)
        self.stored_caps = lock_caps(conn, ctx.app_id, users, [ctx.day, ctx.month])
        self.caps = dict(self.stored_caps)
        self.prior = _existing(conn, ctx.app_id, [r.key for r in requests])
        self.dirty_subs: set[tuple[str, str, str]] = set()
        self.dirty_caps: set[tuple[str, str]] = set()
        self.rows: list[dict[str, Any]] = []
        self.rendered: dict[Any, str | None] = {}

    def decide(
        self, request: SendRequest, reason: str | None, templates: list[ChannelTemplate]
    ) -> Decision:
        if request.key in self.prior:
            return self.prior[request.key]
        row = _message_row(self.ctx, request, reason)
        if reason is None:
            self._consent_and_caps(request, templates, row)
        self.rows.append(row)
        decision = Decision(
            request.key,
            request.user_id,
            row["status"],
            row["reason"],
            row["send_after"],
            row["channel"],
        )
        self.prior[request.key] = decision  # a key twice in one batch: the first decision
        return decision

    def _consent_and_caps(
        self, request: SendRequest, templates: list[ChannelTemplate], row: dict[str, Any]
    ) -> None:
        ctx, user = self.ctx, request.user_id
        chosen: tuple[ChannelTemplate, str] | None = None
        first_reason = None
        for t in templates:
            sub = self.subs.get((user, t.channel, t.template_id or ""))
            verdict, what = consent_reason(sub, t)
            if verdict == "ok":
                chosen = (t, what)
                break
            first_reason = first_reason or what
        if chosen is None:
            return self._skip(row, first_reason or "no_consent")
        template, credit = chosen
        data = self._render(template, request.data)
        if data is None:
            return self._skip(row, "missing_data")
        day, month = (user, ctx.day), (user, ctx.month)
        if self.caps.get(day, 0) >= ctx.rules.caps.per_day:
            return self._skip(row, "cap_day")
        if self.caps.get(month, 0) >= ctx.rules.caps.per_month:
            return self._skip(row, "cap_month")
        self.caps[day] = self.caps.get(day, 0) + 1
        self.caps[month] = self.caps.get(month, 0) + 1
        self.dirty_caps |= {day, month}
        sub_key = (user, template.channel, template.template_id or "")
        sub = self.subs.get(sub_key)
        if credit == "one_time" and sub is not None:
            sub["credits"] -= 1
            self.dirty_subs.add(sub_key)
        row.update(
            channel=template.channel,
            template_id=template.template_id,
            recipient=(sub or {}).get("recipient") or user,
            page=request.page or template.page or ctx.rules.templates[request.scenario].page,
            data=data,
            credit=credit,
            cap_day=ctx.day,
            cap_month=ctx.month,
        )

    def _render(self, template: ChannelTemplate, data: dict[str, Any]) -> str | None:
        """`render`, as JSON, remembered: a campaign sends many users the same data."""
        try:
            key: Any = (id(template), tuple(sorted(data.items())))
            hash(key)
        except TypeError:  # unhashable values: not remembered
            filled = render(template, data)
            return None if filled is None else orjson.dumps(filled).decode()
        if key not in self.rendered:
            filled = render(template, data)
            self.rendered[key] = None if filled is None else orjson.dumps(filled).decode()
        return self.rendered[key]

    @staticmethod
    def _skip(row: dict[str, Any], reason: str) -> None:
        row.update(status="skipped", reason=reason, send_after=None)

    def write(self, conn: sa.Connection) -> None:
        counts = {k: self.caps[k] for k in self.dirty_caps}
        write_caps(conn, self.ctx.app_id, counts, self.stored_caps.keys())
        write_credits(conn, self.ctx.app_id, {k: self.subs[k]["credits"] for k in self.dirty_subs})
        # the only times in a new message are the decision's, the same for the whole chunk
        times: dict[datetime | None, Any] = {None: None}
        for moment in (self.ctx.now, self.ctx.send_after):
            times[moment] = db_value(conn, moment)
        rows = []
        for r in self.rows:
            r["decided_at"], r["send_after"] = times[r["decided_at"]], times[r["send_after"]]
            rows.append(tuple(r[c] for c in MESSAGE_COLUMNS))
        insert_rows(conn, "engage_messages", MESSAGE_COLUMNS, rows)


def _context(
    engine: sa.Engine,
    app: App,
    rules: MessageRules,
    now: datetime,
    control_share: float | None,
) -> _Context:
    if control_share is None:
        from liucun.playbook.store import playbook_in_force

        in_force = playbook_in_force(engine, app.app_id).playbook
        control_share = in_force.engage.campaigns.global_control_share
    tz = ZoneInfo(app.timezone)
    until = quiet_until(now, tz, rules.quiet_hours)
    send_after = until or now
    day, month = cap_periods(send_after, tz)
    return _Context(
        app.app_id,
        rules,
        control_share,
        frozenset(configured_channels(engine, app.app_id)),
        send_after,
        until is not None,
        day,
        month,
        now,
    )


def plan_sends(
    engine: sa.Engine,
    app: App,
    rules: MessageRules,
    requests: list[SendRequest],
    now: datetime,
    *,
    control_share: float | None = None,
    chunk: int = CHUNK,
) -> list[Decision]:
    """Decide and record each request (in order): queued, held or skipped with the reason,
    taking credits and cap slots atomically. `control_share`: the global control group's
    share (default: the playbook in force's `engage.campaigns.global_control_share`)."""
    return _decide_all(engine, app, rules, requests, now, control_share, chunk, record=True)


def preview_sends(
    engine: sa.Engine,
    app: App,
    rules: MessageRules,
    requests: list[SendRequest],
    now: datetime,
    *,
    control_share: float | None = None,
    chunk: int = CHUNK,
) -> list[Decision]:
    """What `plan_sends` would decide for the requests now, recording and taking nothing (a
    campaign's dry run). Each request is decided against the credits and caps as they stand;
    requests for one user in one call share them, as in `plan_sends`."""
    return _decide_all(engine, app, rules, requests, now, control_share, chunk, record=False)


def _decide_all(
    engine: sa.Engine,
    app: App,
    rules: MessageRules,
    requests: list[SendRequest],
    now: datetime,
    control_share: float | None,
    chunk: int,
    record: bool,
) -> list[Decision]:
    for request in requests:
        _check(request)
    if now.tzinfo is None:
        raise ValueError("now must be an aware time")
    now = now.astimezone(UTC)
    ctx = _context(engine, app, rules, now, control_share)
    decisions: list[Decision] = []
    for start in range(0, len(requests), chunk):
        decisions += _decide_chunk(engine, ctx, requests[start : start + chunk], record)
    return decisions


def _decide_chunk(
    engine: sa.Engine, ctx: _Context, requests: Sequence[SendRequest], record: bool = True
) -> list[Decision]:
    for attempt in range(ATTEMPTS):
        try:
            with write_transaction(engine) as conn:
                work = _Chunk(conn, ctx, requests)
                decisions = [work.decide(r, reason, ts) for r, reason, ts in work.plans]
                if record:
                    work.write(conn)
                return decisions
        except sa.exc.IntegrityError:
            # another transaction recorded one of these keys, or created one of these cap
            # counts, first (PostgreSQL: not yet committed when this one looked); everything
            # here rolled back: decide again, now seeing it
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
