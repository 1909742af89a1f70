"""Send decisions: credits and frequency caps under 100 concurrent sends to one user; quiet
hours across midnight in Asia/Shanghai and across DST switches; the consent ledger's rules;
every skip reason; decisions in bulk against a plain-Python reference; the HTTP endpoints.

Asia/Shanghai is UTC+8: 14:00Z is 22:00 local, 00:00Z is 08:00 local.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from liucun.engage.channels.accounts import set_account
from liucun.engage.consent import record_consent, subscriptions_of
from liucun.engage.delivery import deliver_due
from liucun.engage.holdout import in_global_control
from liucun.engage.message_errors import MessageError
from liucun.engage.quiet_hours import quiet_until
from liucun.engage.sending import Decision, SendRequest, plan_sends, preview_sends
from liucun.playbook.messages import (
    ChannelTemplate,
    FrequencyCaps,
    LongTerm,
    MessageRules,
    QuietHours,
    ScenarioTemplate,
)
from liucun.state.apps import App, find_app
from liucun.state.apps import create_app as create_tenant
from liucun.state.tables import engage_cap_counts
from tests.engage_fakes import FakeWebhook, serving
from tests.loyalty_helpers import loyalty_server

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
NOON = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 local
WEBHOOK_SECRET = "s3cret-webhook-key-0123"


def local(*args: int, tz: ZoneInfo = ZONE) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


def rules(
    per_day: int = 1,
    per_month: int = 3,
    channels: tuple[str, ...] = ("wechat",),
    long_term: bool = False,
    quiet: bool = True,
) -> MessageRules:
    """The shipped rules with template ids filled in (tmpl-<scenario>-<channel>)."""
    shipped = MessageRules()
    templates = {}
    for name, scenario in shipped.templates.items():
        fields = scenario.channels[0].fields
        templates[name] = ScenarioTemplate(
            zh=scenario.zh,
            en=scenario.en,
            page=scenario.page,
            channels=[
                ChannelTemplate(
                    channel=c,  # type: ignore[arg-type]
                    template_id=f"tmpl-{name}-{c}",
                    subscription="long_term" if long_term and c == "wechat" else "one_time",
                    fields=fields,
                )
                for c in channels
            ],
        )
    return MessageRules(
        caps=FrequencyCaps(per_day=per_day, per_month=per_month),
        quiet_hours=QuietHours(enabled=quiet),
        long_term=LongTerm(wechat=long_term),
        templates=templates,
    )


def new_app(engine: sa.Engine, name: str = "shop", tz: str = TZ) -> App:
    creds = create_tenant(engine, name, tz)
    app = find_app(engine, creds.app_id)
    set_account(engine, app.app_id, "wechat", {"appid": "wx1"}, {"secret": "x"}, NOON)
    return app


def grant(engine: sa.Engine, app: App, user: str, template: str, n: int, at: datetime) -> None:
    for i in range(n):
        record_consent(
            engine, app.app_id, rules(), user, "wechat", {template: "accept"}, False,
            f"grant-{user}-{template}-{i}-{at.isoformat()}", at,
        )  # fmt: skip


COUPON = {"coupon_name": "20 元无门槛券", "valid_until": "2026-11-30"}
TMPL = "tmpl-winback_coupon-wechat"


def coupon(user: str, key: str, campaign: str | None = "c1") -> SendRequest:
    return SendRequest(user, "winback_coupon", key, campaign, {"coupon_name": "20 元券"})


def send(
    engine: sa.Engine, app: App, r: MessageRules, reqs: list[SendRequest], at: datetime
) -> list[Decision]:
    return plan_sends(engine, app, r, reqs, at, control_share=0.0)


# --- credits and caps under concurrency -------------------------------------------------


# (credits, per day, per month): each of the three limits binding in turn
CASES = [(3, 5, 10), (10, 2, 10), (10, 5, 4)]


def test_credits_and_caps_hold_under_100_concurrent_sends(engine: sa.Engine) -> None:
    for n, (credits, per_day, per_month) in enumerate(CASES):
        app = new_app(engine, f"shop{n}")
        grant(engine, app, "u1", TMPL, credits, NOON)
        r = rules(per_day=per_day, per_month=per_month)
        start = threading.Barrier(100)

        def one(i: int, app: App = app, r: MessageRules = r, start: Any = start) -> Decision:
            start.wait()
            return send(engine, app, r, [coupon("u1", f"k{i}", f"camp{i % 7}")], NOON)[0]

        with ThreadPoolExecutor(100) as pool:
            decisions = list(pool.map(one, range(100)))

        # the reference: consent is checked before the caps, the day's cap before the month's
        sent = min(credits, per_day, per_month)
        if credits <= min(per_day, per_month):
            reason = "no_credit"
        else:
            reason = "cap_day" if per_day <= per_month else "cap_month"
        assert sum(d.status == "queued" for d in decisions) == sent
        assert sorted({d.reason for d in decisions if d.status == "skipped"}) == [reason]
        [sub] = subscriptions_of(engine, app.app_id, "u1")
        assert sub["credits"] == credits - sent
        c = engage_cap_counts.c
        with engine.connect() as conn:
            used = dict(
                conn.execute(
                    sa.select(c.period, c.used).where(c.app_id == app.app_id, c.user_id == "u1")
                ).all()
            )
        assert used == {"2026-11-20": sent, "2026-11": sent}


def test_a_key_is_decided_once(engine: sa.Engine) -> None:
    app = new_app(engine)
    grant(engine, app, "u1", TMPL, 2, NOON)
    r = rules(per_day=5)
    first = send(engine, app, r, [coupon("u1", "same")], NOON)[0]
    again = send(engine, app, r, [coupon("u1", "same"), coupon("u1", "same")], NOON)
    assert (first.status, first.replayed) == ("queued", False)
    assert [(d.status, d.replayed) for d in again] == [("queued", True), ("queued", True)]
    assert subscriptions_of(engine, app.app_id, "u1")[0]["credits"] == 1


# --- quiet hours ------------------------------------------------------------------------


def test_quiet_hours_across_midnight_in_shanghai() -> None:
    q = QuietHours()
    assert quiet_until(local(2026, 11, 20, 21, 59, 59), ZONE, q) is None
    assert quiet_until(local(2026, 11, 20, 22, 0), ZONE, q) == local(2026, 11, 21, 8, 0)
    assert quiet_until(local(2026, 11, 20, 23, 59, 59), ZONE, q) == local(2026, 11, 21, 8, 0)
    assert quiet_until(local(2026, 11, 21, 0, 0), ZONE, q) == local(2026, 11, 21, 8, 0)
    assert quiet_until(local(2026, 11, 21, 7, 59, 59), ZONE, q) == local(2026, 11, 21, 8, 0)
    assert quiet_until(local(2026, 11, 21, 8, 0), ZONE, q) is None
    # 22:00 local is 14:00 UTC the same date; 08:00 local is 00:00 UTC
    assert local(2026, 11, 21, 8, 0) == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert quiet_until(local(2026, 11, 20, 23, 0), ZONE, QuietHours(enabled=False)) is None


def test_quiet_hours_across_dst_switches() -> None:
    ny = ZoneInfo("America/New_York")
    q = QuietHours()
    # spring forward, 2026-03-08 02:00 → 03:00: 23:00 EST to 08:00 EDT is 8 hours
    evening = local(2026, 3, 7, 23, 0, tz=ny)
    assert evening == datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
    assert quiet_until(evening, ny, q) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    # fall back, 2026-11-01 02:00 → 01:00: 23:00 EDT to 08:00 EST is 10 hours
    evening = local(2026, 10, 31, 23, 0, tz=ny)
    assert evening == datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert quiet_until(evening, ny, q) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    # the repeated hour 01:30 (both times) is inside the window
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert quiet_until(first, ny, q) == quiet_until(second, ny, q)
    # a window ending inside the spring-forward gap ends at the first instant after it
    gap = QuietHours(
        start=datetime(2000, 1, 1, 1, 0).time(), end=datetime(2000, 1, 1, 2, 30).time()
    )
    assert quiet_until(local(2026, 3, 8, 1, 15, tz=ny), ny, gap) == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )


def test_held_messages_go_out_when_the_quiet_hours_end(engine: sa.Engine) -> None:
    app = new_app(engine)
    fake = FakeWebhook(WEBHOOK_SECRET)
    r = rules(per_day=1, channels=("webhook",))
    with serving(fake) as url:
        set_account(engine, app.app_id, "webhook", {"url": url}, {"secret": WEBHOOK_SECRET}, NOON)
        before = send(engine, app, r, [coupon("u1", "a")], local(2026, 11, 20, 21, 59, 59))
        assert (before[0].status, before[0].send_after) == (
            "queued",
            local(2026, 11, 20, 21, 59, 59),
        )
        held = send(engine, app, r, [coupon("u2", "b")], local(2026, 11, 20, 22, 0))[0]
        assert (held.status, held.send_after) == ("held", local(2026, 11, 21, 8, 0))
        # u2's slot is counted on the 21st, the day it goes out: a second message that night
        # or the next morning finds the day's cap taken; u1's evening message counted on the 20th
        late = send(engine, app, r, [coupon("u2", "c")], local(2026, 11, 21, 7, 59, 59))[0]
        morning = send(engine, app, r, [coupon("u1", "d")], local(2026, 11, 21, 8, 0))[0]
        assert (late.status, late.reason) == ("skipped", "cap_day")
        assert (morning.status, morning.reason) == ("queued", None)

        def deliver(at: datetime) -> Any:
            return deliver_due(engine, app, at, rules=r, clock=lambda: at, sleep=lambda s: None)

        assert deliver(local(2026, 11, 20, 21, 59, 59)).sent == 1  # "a"
        assert deliver(local(2026, 11, 21, 7, 59, 59)).claimed == 0
        assert deliver(local(2026, 11, 21, 8, 0)).sent == 2  # "b" (held) and "d"
    assert [m["body"]["idempotency_key"] for m in fake.received] == ["a", "b", "d"]


# --- consent rules ----------------------------------------------------------------------


def test_the_consent_ledger_follows_the_platform_rules(engine: sa.Engine) -> None:
    app = new_app(engine)
    r = rules()

    def answer(key: str, results: dict[str, str], keep: bool = False) -> list[dict[str, Any]]:
        out = record_consent(engine, app.app_id, r, "u1", "wechat", results, keep, key, NOON)
        return out.result["subscriptions"]  # type: ignore[no-any-return]

    # one credit per accept, stacking; "always keep" removes the prompt, not the rule
    answer("k1", {"A": "accept", "B": "accept", "C": "filter"})
    answer("k2", {"A": "accept"}, keep=True)
    [a] = answer("k3", {"A": "accept"}, keep=True)
    assert (a["credits"], a["accepted"], a["status"]) == (3, 3, "accepted")
    # a replayed key changes nothing and answers the same; a reused key is refused
    assert answer("k3", {"A": "accept"}, keep=True) == [a]
    with pytest.raises(MessageError) as refused:
        answer("k3", {"A": "reject"})
    assert refused.value.code == "idempotency_key_reused"
    # a plain reject leaves the earlier accepts' credits; always-reject and ban end them
    [b] = answer("k4", {"B": "reject"})
    assert (b["credits"], b["status"]) == (1, "rejected")
    [b] = answer("k5", {"B": "reject"}, keep=True)
    assert (b["credits"], b["status"]) == (0, "always_rejected")
    [a] = answer("k6", {"A": "ban"})
    assert (a["credits"], a["status"]) == (0, "banned")
    subs = {s["template_id"]: s for s in subscriptions_of(engine, app.app_id, "u1")}
    assert subs["C"]["status"] == "none" and subs["C"]["credits"] == 0  # filter: recorded only
    with pytest.raises(MessageError) as bad:
        answer("k7", {"A": "accept", "B": "accept", "C": "accept", "D": "accept"})
    assert (bad.value.code, bad.value.status) == ("bad_consent_results", 422)
    with pytest.raises(MessageError):
        record_consent(engine, app.app_id, r, "u1", "sms", {"A": "accept"}, False, "k8", NOON)


def test_long_term_subscriptions_need_no_credit_but_keep_the_caps(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match=r"long_term\.wechat: true"):
        MessageRules(
            templates={
                "x": ScenarioTemplate(
                    zh="x",
                    en="x",
                    page="p",
                    channels=[ChannelTemplate(channel="wechat", subscription="long_term")],
                )
            }
        )
    app = new_app(engine)
    r = rules(per_day=2, per_month=3, long_term=True)
    record_consent(engine, app.app_id, r, "u1", "wechat", {TMPL: "accept"}, False, "k", NOON)
    days = [
        send(engine, app, r, [coupon("u1", f"d{i}")], NOON + timedelta(days=i))[0] for i in range(4)
    ]
    assert [d.status for d in days] == ["queued", "queued", "queued", "skipped"]
    assert days[3].reason == "cap_month"
    assert subscriptions_of(engine, app.app_id, "u1")[0]["credits"] == 0


# --- every skip reason, and decisions in bulk -------------------------------------------


def test_each_skip_reason(engine: sa.Engine) -> None:
    app = new_app(engine)
    r = rules(per_day=1, per_month=2)
    grant(engine, app, "u1", TMPL, 5, NOON)
    record_consent(engine, app.app_id, r, "u2", "wechat", {TMPL: "reject"}, True, "r2", NOON)
    record_consent(engine, app.app_id, r, "u3", "wechat", {TMPL: "accept"}, False, "r3", NOON)
    shipped = MessageRules()  # template ids not filled in
    assert send(engine, app, shipped, [coupon("u1", "t")], NOON)[0].reason == "no_template"
    alipay_only = rules(channels=("alipay",))
    assert send(engine, app, alipay_only, [coupon("u1", "n")], NOON)[0].reason == (
        "no_channel_account"
    )
    controlled = next(
        u for u in (f"g{i}" for i in range(1000)) if in_global_control(app.app_id, u, 0.2)
    )
    d = plan_sends(engine, app, r, [coupon(controlled, "gc")], NOON, control_share=0.2)[0]
    assert d.reason == "global_control"
    out = send(
        engine,
        app,
        r,
        [
            coupon("nobody", "s1"),
            coupon("u2", "s2"),
            SendRequest("u1", "winback_coupon", "s3", data={}),  # no coupon_name
            coupon("u1", "s4"),
            coupon("u1", "s5"),  # the day's cap
            coupon("u3", "s6"),
            coupon("u3", "s7"),  # u3's one credit is used
        ],
        NOON,
    )
    assert [(d.status, d.reason) for d in out] == [
        ("skipped", "no_consent"),
        ("skipped", "rejected"),
        ("skipped", "missing_data"),
        ("queued", None),
        ("skipped", "cap_day"),
        ("queued", None),
        ("skipped", "no_credit"),
    ]
    assert (
        send(engine, app, r, [coupon("u1", "s8")], NOON + timedelta(days=1))[0].status == "queued"
    )
    third = send(engine, app, r, [coupon("u1", "s9")], NOON + timedelta(days=2))[0]
    assert third.reason == "cap_month"
    # a new month counts from 0 (December 1st, local)
    assert send(engine, app, r, [coupon("u1", "s10")], local(2026, 12, 1, 9, 0))[0].status == (
        "queued"
    )


def _reference(
    requests: list[SendRequest],
    credits: dict[str, int],
    r: MessageRules,
    held: bool,
) -> list[tuple[str, str | None]]:
    """The decisions in plain Python, one request after another."""
    credits = dict(credits)
    day_used: dict[str, int] = {}
    seen: dict[str, tuple[str, str | None]] = {}
    out = []
    for q in requests:
        if q.key in seen:
            out.append(seen[q.key])
            continue
        if q.scenario not in r.templates:
            result: tuple[str, str | None] = ("skipped", "no_template")
        elif q.user_id not in credits:
            result = ("skipped", "no_consent")
        elif credits[q.user_id] == 0:
            result = ("skipped", "no_credit")
        elif any(v is None for v in q.data.values()) or "coupon_name" not in q.data:
            result = ("skipped", "missing_data")
        elif day_used.get(q.user_id, 0) >= r.caps.per_day:
            result = ("skipped", "cap_day")
        else:
            credits[q.user_id] -= 1
            day_used[q.user_id] = day_used.get(q.user_id, 0) + 1
            result = ("held" if held else "queued", None)
        seen[q.key] = result
        out.append(result)
    return out


@pytest.mark.parametrize("held", [False, True])
def test_bulk_decisions_match_a_plain_python_reference(engine: sa.Engine, held: bool) -> None:
    app = new_app(engine)
    r = rules(per_day=2, per_month=2)
    rng = random.Random(8)
    credits = {f"u{i}": rng.randint(0, 3) for i in range(30)}
    for user, n in credits.items():
        if n:
            grant(engine, app, user, TMPL, n, NOON)
        elif rng.random() < 0.5:
            record_consent(engine, app.app_id, r, user, "wechat", {TMPL: "accept"}, False,
                           f"used-{user}", NOON)  # fmt: skip
            credits[user] = 1
    requests = []
    for _ in range(300):
        user = f"u{rng.randint(0, 39)}"  # u30..u39 never answered
        scenario = rng.choice(["winback_coupon", "winback_coupon", "no_such_scenario"])
        data = {"coupon_name": "券"} if rng.random() < 0.9 else {}
        key = f"k{rng.randint(0, 260)}"  # some keys repeat
        requests.append(SendRequest(user, scenario, key, "c", data))
    at = local(2026, 11, 20, 23, 0) if held else NOON
    got = plan_sends(engine, app, r, requests, at, control_share=0.0, chunk=37)
    # users without a row answered "none": the reference treats them as never answered
    known = {u: n for u, n in credits.items() if u in _answered(engine, app)}
    assert [(d.status, d.reason) for d in got] == _reference(requests, known, r, held)


def test_a_preview_decides_as_a_send_would_and_takes_nothing(engine: sa.Engine) -> None:
    app = new_app(engine)
    r = rules(per_day=1, per_month=3)
    grant(engine, app, "u1", TMPL, 2, NOON)
    grant(engine, app, "u2", TMPL, 1, NOON)
    requests = [coupon(u, f"p-{u}-{i}") for u in ("u1", "u2", "u3") for i in range(2)]
    preview = preview_sends(engine, app, r, requests, NOON, control_share=0.0)
    # nothing taken: the same preview again gives the same answer, and no message is kept
    assert preview_sends(engine, app, r, requests, NOON, control_share=0.0) == preview
    assert subscriptions_of(engine, app.app_id, "u1")[0]["credits"] == 2
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(*) FROM engage_messages")).scalar()
    assert kept == 0
    sent = send(engine, app, r, requests, NOON)
    assert [(d.status, d.reason) for d in preview] == [(d.status, d.reason) for d in sent]
    assert [d.status for d in sent].count("queued") == 2  # u1 and u2 once each (1 a day)


def _answered(engine: sa.Engine, app: App) -> set[str]:
    from liucun.state.tables import engage_subscriptions

    s = engage_subscriptions.c
    with engine.connect() as conn:
        return set(conn.execute(sa.select(s.user_id).where(s.app_id == app.app_id)).scalars())


# --- HTTP -------------------------------------------------------------------------------


def test_the_consent_and_message_endpoints(tmp_path: Path, state_url: str) -> None:
    with loyalty_server(tmp_path, state_url, NOON) as server:
        client, app_id = server.client, server.creds.app_id
        admin = {"Authorization": f"Bearer {server.creds.admin_token}"}
        user = {**server.user_headers("u1"), "Idempotency-Key": "p1"}
        body = {"channel": "wechat", "results": {TMPL: "accept", "other": "reject"}}
        first = client.post("/v1/engage/consents", json=body, headers=user)
        assert first.status_code == 200, first.text
        again = client.post("/v1/engage/consents", json=body, headers=user)
        assert again.json() == first.json()
        listed = client.get("/v1/engage/consents", headers=server.user_headers("u1")).json()
        assert [(s["template_id"], s["credits"], s["status"]) for s in listed] == [
            ("other", 0, "rejected"),
            (TMPL, 1, "accepted"),
        ]
        bad = client.post(
            "/v1/engage/consents",
            json={"channel": "wechat", "results": {TMPL: "maybe"}},
            headers={**server.user_headers("u1"), "Idempotency-Key": "p2"},
        )
        assert bad.status_code == 422
        no_key = client.post("/v1/engage/consents", json=body, headers=server.user_headers("u1"))
        assert no_key.status_code == 422
        assert client.post("/v1/engage/consents", json=body).status_code == 401

        # channel accounts: secrets are stored, never shown
        put = client.put(
            f"/admin/v1/apps/{app_id}/channels/webhook",
            json={
                "settings": {"url": "http://127.0.0.1:9/x"},
                "secrets": {"secret": WEBHOOK_SECRET},
            },
            headers=admin,
        )
        assert put.status_code == 200, put.text
        assert WEBHOOK_SECRET not in put.text and put.json()["secrets_set"] == ["secret"]
        shown = client.get(f"/admin/v1/apps/{app_id}/channels", headers=admin)
        assert WEBHOOK_SECRET not in shown.text and shown.json()[0]["channel"] == "webhook"
        refused = client.put(
            f"/admin/v1/apps/{app_id}/channels/webhook",
            json={"settings": {"url": "ftp://x"}},
            headers=admin,
        )
        assert refused.status_code == 422 and refused.json()["detail"]["code"] == (
            "bad_channel_account"
        )
        # with no template ids in the shipped playbook, a send is skipped as no_template
        decided = client.post(
            f"/admin/v1/apps/{app_id}/messages",
            json={"requests": [{"user_id": "u1", "scenario": "winback_coupon", "key": "m1",
                                "data": {"coupon_name": "券"}}]},
            headers=admin,
        )  # fmt: skip
        assert decided.status_code == 200, decided.text
        assert decided.json()[0]["reason"] == "no_template"
        skipped = client.get(
            f"/admin/v1/apps/{app_id}/messages", params={"status": "skipped"}, headers=admin
        ).json()
        assert [m["key"] for m in skipped] == ["m1"]
        detail = client.get(f"/admin/v1/apps/{app_id}/messages/m1", headers=admin).json()
        assert detail["deliveries"] == []
        assert (
            client.get(f"/admin/v1/apps/{app_id}/messages/nope", headers=admin).status_code == 404
        )
        counts = client.get(f"/admin/v1/apps/{app_id}/messages/counts", headers=admin).json()
        assert counts == {"skipped": 1, "skipped:no_template": 1}
        consents = client.get(
            f"/admin/v1/apps/{app_id}/consents", params={"user_id": "u1"}, headers=admin
        ).json()
        assert [h["result"] for h in consents["history"]] == ["accept", "reject"]  # newest first
        report = client.post(f"/admin/v1/apps/{app_id}/messages/deliver", headers=admin).json()
        assert report["claimed"] == 0


def test_the_shipped_playbook_writes_the_models_defaults() -> None:
    from liucun.playbook.load import default_text, parse_playbook

    shipped = parse_playbook(default_text()).engage.messages
    assert shipped == MessageRules()
    assert (shipped.caps.per_day, shipped.caps.per_month) == (1, 3)  # seeds 000: 2–3 a month
    assert sorted(shipped.templates) == sorted(
        [
            "coupon_expiring", "points_expiring", "bill_due", "assets_changed",
            "winback_coupon", "welcome_pack_reminder", "new_user_day3", "streak_at_risk",
            "ladder_one_visit_away",
        ]
    )  # fmt: skip
