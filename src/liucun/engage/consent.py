"""The consent ledger: what users answered to subscribe prompts, and the send credits it adds
up to, per user, channel and template.

Platform rules (docs/messages.md#consent):
- WeChat one-time subscriptions: every `accept` of a template in wx.requestSubscribeMessage
  grants ONE send credit for it; credits stack (three accepts, three messages). Ticking
  "always keep this choice" only stops the prompt from showing: each later accept is still
  one credit. Alipay's one-time subscriptions (my.requestSubscribeMessage) work the same.
- Long-term subscriptions (several messages after one accept) only for templates the playbook
  marks `subscription: long_term`, which it allows only where the platform lets the app's
  category have them (`engage.messages.long_term`).
- `reject` is recorded; with "always keep this choice" it is "always reject": the platform will
  refuse every send, so the credits go. Without it, credits from earlier accepts stay (each
  accept was its own grant). `ban` (the template is banned by the platform) ends credits too.
  `filter` (the prompt dropped the template: a duplicate title) changes nothing.
- A send refused with WeChat's 43101 (no credit, or the user unsubscribed) marks the
  subscription `revoked` with no credits, until the user accepts again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from liucun.engage.bulk import for_update, mark, select_in, update_many
from liucun.engage.message_errors import MessageError
from liucun.loyalty.members import as_utc, check_user_id, insert_ignoring_conflicts
from liucun.playbook.messages import MessageRules
from liucun.state.db import write_transaction
from liucun.state.idempotency import fingerprint, prior_result
from liucun.state.tables import engage_consent_requests, engage_consents, engage_subscriptions

Result = Literal["accept", "reject", "ban", "filter"]
RESULTS = ("accept", "reject", "ban", "filter")
CONSENT_CHANNELS = ("wechat", "alipay")
# wx.requestSubscribeMessage and my.requestSubscribeMessage take at most 3 templates a call
MAX_TEMPLATES = 3
TEMPLATE_ID_MAX = 128
RECIPIENT_MAX = 200
UPDATED = ("credits", "long_term", "status", "accepted", "recipient", "updated_at")


@dataclass(frozen=True)
class ConsentOutcome:
    result: dict[str, Any]
    replayed: bool  # the key was seen before: nothing changed this time


def _check(channel: str, results: dict[str, str], recipient: str | None) -> None:
    if channel not in CONSENT_CHANNELS:
        raise MessageError(
            "bad_channel",
            f"consent is recorded for the channels {', '.join(CONSENT_CHANNELS)}, not {channel!r}",
            f"只能记录 {'、'.join(CONSENT_CHANNELS)} 渠道的订阅授权,不支持 {channel!r}",
            status=422,
        )
    if not 1 <= len(results) <= MAX_TEMPLATES:
        raise MessageError(
            "bad_consent_results",
            f"send 1–{MAX_TEMPLATES} templates' results (a subscribe prompt shows at most "
            f"{MAX_TEMPLATES})",
            f"每次须提交 1–{MAX_TEMPLATES} 个模板的订阅结果(订阅弹窗最多 {MAX_TEMPLATES} 个)",
            status=422,
        )
    for template_id, answer in results.items():
        if (
            not template_id
            or len(template_id) > TEMPLATE_ID_MAX
            or template_id.strip() != template_id
        ):
            raise MessageError(
                "bad_template_id",
                f"template ids are 1–{TEMPLATE_ID_MAX} characters without surrounding spaces",
                f"模板 ID 须为 1–{TEMPLATE_ID_MAX} 个字符,且首尾不能有空格",
                status=422,
            )
        if answer not in RESULTS:
            raise MessageError(
                "bad_consent_result",
                f"template {template_id!r}: the result is one of {', '.join(RESULTS)}, "
                f"not {answer!r}",
                f"模板 {template_id!r} 的订阅结果须为 {'、'.join(RESULTS)} 之一",
                status=422,
            )
    if recipient is not None and not 1 <= len(recipient) <= RECIPIENT_MAX:
        raise MessageError(
            "bad_recipient",
            f"the recipient (openid or Alipay user id) is 1–{RECIPIENT_MAX} characters",
            f"接收者(openid 或支付宝用户 ID)须为 1–{RECIPIENT_MAX} 个字符",
            status=422,
        )


def subscription_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A subscription as the API shows it (docs/messages.md#consent)."""
    return {
        "channel": row["channel"],
        "template_id": row["template_id"],
        "credits": row["credits"],
        "long_term": bool(row["long_term"]),
        "status": row["status"],
        "accepted": row["accepted"],
        "recipient": row["recipient"],
        "updated_at": as_utc(row["updated_at"]),
    }


def _lock_row(
    conn: sa.Connection, app_id: str, user_id: str, channel: str, template_id: str, now: datetime
) -> dict[str, Any]:
    s = engage_subscriptions.c
    query = (
        sa.select(engage_subscriptions)
        .where(
            s.app_id == app_id,
            s.user_id == user_id,
            s.channel == channel,
            s.template_id == template_id,
        )
        .with_for_update()
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        insert_ignoring_conflicts(
            conn,
            engage_subscriptions,
            {
                "app_id": app_id,
                "user_id": user_id,
                "channel": channel,
                "template_id": template_id,
                "credits": 0,
                "long_term": False,
                "status": "none",
                "accepted": 0,
                "recipient": None,
                "updated_at": now,
            },
        )
        row = conn.execute(query).mappings().one()
    return dict(row)


def apply_answer(
    row: dict[str, Any], answer: str, keep_choice: bool, long_term: bool
) -> dict[str, Any]:
    """The subscription after one answer (the rules in the module docstring)."""
    new = dict(row)
    if answer == "accept":
        new["accepted"] += 1
        new["status"] = "accepted"
        if long_term:
            new["long_term"] = True
        else:
            new["credits"] += 1
    elif answer == "reject":
        if keep_choice:
            new.update(status="always_rejected", credits=0, long_term=False)
        else:
            new["status"] = "rejected"
    elif answer == "ban":
        new.update(status="banned", credits=0, long_term=False)
    return new


def _prior(conn: sa.Connection, app_id: str, key: str, print_: str) -> dict[str, Any] | None:
    r = engage_consent_requests.c
    return prior_result(
        conn,
        r.request_key,
        [r.app_id == app_id],
        key,
        print_,
        lambda en, zh: MessageError("idempotency_key_reused", en, zh),
    )


def record_consent(
    engine: sa.Engine,
    app_id: str,
    rules: MessageRules,
    user_id: str,
    channel: str,
    results: dict[str, str],
    keep_choice: bool,
    key: str,
    now: datetime,
    recipient: str | None = None,
) -> ConsentOutcome:
    """Record a subscribe prompt's answers (`results`: template id → accept, reject, ban or
    filter) and update the user's credits, once per `key`. Answers the user's subscriptions
    to those templates."""
    check_user_id(user_id)
    _check(channel, results, recipient)
    request = {"channel": channel, "results": results, "keep": keep_choice, "to": recipient}
    print_ = fingerprint("consent", user_id, request)
    try:
        with write_transaction(engine) as conn:
            prior = _prior(conn, app_id, key, print_)
            if prior is not None:
                return ConsentOutcome(prior, True)
            out = []
            for template_id in sorted(results):  # one lock order for every request
                answer = results[template_id]
                template = rules.template_of(template_id, channel)
                long_term = template is not None and template.subscription == "long_term"
                row = _lock_row(conn, app_id, user_id, channel, template_id, now)
                new = apply_answer(row, answer, keep_choice, long_term)
                if recipient is not None:
                    new["recipient"] = recipient
                new["updated_at"] = now
                s = engage_subscriptions.c
                conn.execute(
                    sa.update(engage_subscriptions)
                    .where(
                        s.app_id == app_id,
                        s.user_id == user_id,
                        s.channel == channel,
                        s.template_id == template_id,
                    )
                    .values({k: new[k] for k in UPDATED})
                )
                conn.execute(
                    engage_consents.insert().values(
                        app_id=app_id,
                        user_id=user_id,
                        channel=channel,
                        template_id=template_id,
                        result=answer,
                        keep_choice=keep_choice,
                        subscription="long_term" if long_term else "one_time",
                        request_key=key,
                        recorded_at=now,
                    )
                )
                out.append(subscription_json(new))
            result = {"channel": channel, "subscriptions": out}
            conn.execute(
                engage_consent_requests.insert().values(
                    app_id=app_id,
                    request_key=key,
                    user_id=user_id,
                    fingerprint=print_,
                    result=orjson.dumps(result).decode(),
                    created_at=now,
                )
            )
            return ConsentOutcome(orjson.loads(orjson.dumps(result)), False)
    except sa.exc.IntegrityError:
        with engine.connect() as conn:  # the same key committed first, from another request
            prior = _prior(conn, app_id, key, print_)
        if prior is None:
            raise
        return ConsentOutcome(prior, True)


def subscriptions_of(engine: sa.Engine, app_id: str, user_id: str) -> list[dict[str, Any]]:
    """A user's subscriptions (credits, long-term, stance), by channel and template."""
    s = engage_subscriptions.c
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(engage_subscriptions)
                .where(s.app_id == app_id, s.user_id == user_id)
                .order_by(s.channel, s.template_id)
            )
            .mappings()
            .all()
        )
    return [subscription_json(r) for r in rows]


def consent_history(
    engine: sa.Engine, app_id: str, user_id: str, limit: int = 200
) -> list[dict[str, Any]]:
    """A user's answers to subscribe prompts, newest first."""
    c = engage_consents.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(engage_consents)
            .where(c.app_id == app_id, c.user_id == user_id)
            .order_by(c.consent_id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "channel": r.channel,
            "template_id": r.template_id,
            "result": r.result,
            "keep_choice": bool(r.keep_choice),
            "subscription": r.subscription,
            "recorded_at": as_utc(r.recorded_at),
        }
        for r in rows
    ]


def lock_subscriptions(
    conn: sa.Connection, app_id: str, users: list[str]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The subscriptions of `users` (sorted), locked to the end of the transaction; keyed by
    (user, channel, template id): credits, long_term, status, recipient."""
    sql = (
        "SELECT user_id, channel, template_id, credits, long_term, status, recipient "
        f"FROM engage_subscriptions WHERE app_id = {mark(conn)} AND user_id IN ({{in}})"
    )
    trailing = " ORDER BY user_id, channel, template_id" + for_update(conn)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for user, channel, template, credits, long_term, status, recipient in select_in(
        conn, sql, [app_id], users, trailing
    ):
        found[(user, channel, template)] = {
            "credits": credits,
            "long_term": bool(long_term),
            "status": status,
            "recipient": recipient,
        }
    return found


def write_credits(
    conn: sa.Connection, app_id: str, credits: dict[tuple[str, str, str], int]
) -> None:
    """Store the credits of subscriptions this transaction holds locked."""
    update_many(
        conn,
        "engage_subscriptions",
        ["credits"],
        ["app_id", "user_id", "channel", "template_id"],
        ["int", "text", "text", "text", "text"],
        [(n, app_id, *key) for key, n in sorted(credits.items())],
    )


def _subscription(app_id: str, user_id: str, channel: str, template_id: str) -> sa.Update:
    """An UPDATE of one subscription row."""
    s = engage_subscriptions.c
    return sa.update(engage_subscriptions).where(
        s.app_id == app_id, s.user_id == user_id, s.channel == channel, s.template_id == template_id
    )


def mark_revoked(
    conn: sa.Connection, app_id: str, user_id: str, channel: str, template_id: str, now: datetime
) -> None:
    """The platform refused a send for want of consent (WeChat 43101): no credits are left."""
    conn.execute(
        _subscription(app_id, user_id, channel, template_id).values(
            credits=0, long_term=False, status="revoked", updated_at=now
        )
    )


def return_credit(
    conn: sa.Connection, app_id: str, user_id: str, channel: str, template_id: str
) -> None:
    """Give back the one-time credit of a message that was never delivered."""
    credits = engage_subscriptions.c.credits
    conn.execute(_subscription(app_id, user_id, channel, template_id).values(credits=credits + 1))
