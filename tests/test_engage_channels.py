"""Channels over real HTTP, against local servers that implement the platforms' contracts
(tests/engage_fakes.py): WeChat's access token (fetched once, shared, refreshed when it
expires) and its send errors (43101 refused and never retried, -1 and 5xx retried, 40003
failed); Alipay's RSA2-signed gateway (checked by the server with the app's public key; its
signed answers checked here); the signed webhook. Every attempt is in the delivery log.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from liucun.config import Settings
from liucun.engage.channels import rsa2
from liucun.engage.channels.accounts import channel_accounts, load_account, set_account
from liucun.engage.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from liucun.engage.channels.wechat import WeChatChannel
from liucun.engage.consent import record_consent, subscriptions_of
from liucun.engage.delivery import DeliveryReport, deliver_due
from liucun.engage.message_errors import MessageError
from liucun.engage.message_log import find_message
from liucun.engage.sending import SendRequest, plan_sends
from liucun.state.apps import App, find_app
from liucun.state.apps import create_app as create_tenant
from liucun.state.tables import engage_cap_counts
from tests.engage_fakes import (
    FakeAlipay,
    FakeWebhook,
    FakeWeChat,
    openssl_sign,
    openssl_verify,
    rsa_pair,
    serving,
)
from tests.test_engage_messages import rules

NOON = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
OPENID = "o-openid-1"
SECRET = "whsec-0123456789abcdef"


@dataclass
class Setup:
    engine: sa.Engine
    app: App
    sleeps: list[float]

    def deliver(self, url: str, channel_rules: Any = None) -> DeliveryReport:
        settings = Settings(wechat_api_base=url, alipay_gateway=url + "/gateway.do")
        return deliver_due(
            self.engine,
            self.app,
            NOON,
            rules=channel_rules or rules(per_day=5, per_month=10, channels=("wechat",)),
            settings=settings,
            sleep=self.sleeps.append,
            clock=lambda: NOON,
        )

    def attempts(self, key: str) -> list[tuple[str, str | None]]:
        found = find_message(self.engine, self.app.app_id, key)
        assert found is not None
        return [(d["outcome"], d["code"]) for d in found["deliveries"]]

    def status(self, key: str) -> tuple[str, str | None]:
        found = find_message(self.engine, self.app.app_id, key)
        assert found is not None
        return found["status"], found["reason"]


@pytest.fixture
def setup(engine: sa.Engine) -> Iterator[Setup]:
    creds = create_tenant(engine, "shop", "Asia/Shanghai")
    yield Setup(engine, find_app(engine, creds.app_id), [])


def queue(s: Setup, channel: str, keys: list[str], credits: int = 5, user: str = "u1") -> None:
    r = rules(per_day=5, per_month=10, channels=(channel,))
    template = f"tmpl-winback_coupon-{channel}"
    if channel != "webhook":
        for i in range(credits):
            to = OPENID if channel == "wechat" else "2088000000000001"
            record_consent(
                s.engine, s.app.app_id, r, user, channel, {template: "accept"}, False,
                f"c-{user}-{i}", NOON, recipient=to,
            )  # fmt: skip
    requests = [
        SendRequest(user, "winback_coupon", k, "c1", {"coupon_name": "20 元券"}) for k in keys
    ]
    decisions = plan_sends(s.engine, s.app, r, requests, NOON, control_share=0.0)
    assert {d.status for d in decisions} == {"queued"}, decisions


# --- WeChat -----------------------------------------------------------------------------


def wechat_account(s: Setup, fake: FakeWeChat) -> None:
    set_account(
        s.engine, s.app.app_id, "wechat", {"appid": fake.appid}, {"secret": fake.secret}, NOON
    )


def test_wechat_sends_with_one_shared_token_and_refreshes_it_once(setup: Setup) -> None:
    fake = FakeWeChat()
    fake.grant(OPENID, "tmpl-winback_coupon-wechat", 3)
    wechat_account(setup, fake)
    queue(setup, "wechat", ["a", "b"])
    with serving(fake) as url:
        report = setup.deliver(url)
        assert (report.sent, report.attempts) == (2, 2)
        assert fake.tokens_issued == 1  # fetched once, cached in the state store
        # a second server (another adapter on the same store) uses the same token
        other = WeChatChannel(
            setup.engine,
            setup.app.app_id,
            load_account(setup.engine, setup.app.app_id, "wechat"),  # type: ignore[arg-type]
            url,
            httpx.Client(),
        )
        assert other.token() == "token-1" and fake.tokens_issued == 1
        # the token expires early (WeChat answers 42001): one refresh, then the send goes
        fake.expire_token()
        queue(setup, "wechat", ["c"], credits=0)
        report = setup.deliver(url)
    assert report.sent == 1 and fake.tokens_issued == 2
    assert setup.attempts("c") == [("stale_token", "42001"), ("sent", "0")]
    assert setup.sleeps == []  # a fresh token is tried at once
    sent = fake.sends[-1]
    assert sent["touser"] == OPENID and sent["page"] == "pages/coupons/index"
    assert sent["data"]["thing1"] == {"value": "20 元券"}
    assert (sent["miniprogram_state"], sent["lang"]) == ("formal", "zh_CN")


def test_43101_marks_the_credits_gone_and_is_not_retried(setup: Setup) -> None:
    fake = FakeWeChat()  # the platform knows of no credit for this user
    wechat_account(setup, fake)
    queue(setup, "wechat", ["a"], credits=2)
    with serving(fake) as url:
        report = setup.deliver(url)
    assert (report.refused, report.attempts) == (1, 1)
    assert setup.attempts("a") == [("refused", "43101")]
    assert setup.status("a") == ("refused", "no_credit")
    [sub] = subscriptions_of(setup.engine, setup.app.app_id, "u1")
    assert (sub["credits"], sub["status"]) == (0, "revoked")
    # the cap slots are given back, and the next decision knows the consent is gone
    c = engage_cap_counts.c
    with setup.engine.connect() as conn:
        assert set(conn.execute(sa.select(c.used)).scalars()) == {0}
    r = rules(per_day=5, per_month=10)
    again = plan_sends(
        setup.engine, setup.app, r,
        [SendRequest("u1", "winback_coupon", "b", data={"coupon_name": "x"})],
        NOON, control_share=0.0,
    )  # fmt: skip
    assert (again[0].status, again[0].reason) == ("skipped", "revoked")


def test_wechat_transient_failures_are_retried_with_backoff(setup: Setup) -> None:
    fake = FakeWeChat(script=[-1, ("http", 503)])
    fake.grant(OPENID, "tmpl-winback_coupon-wechat", 1)
    wechat_account(setup, fake)
    queue(setup, "wechat", ["a"])
    with serving(fake) as url:
        report = setup.deliver(url)
    assert report.sent == 1
    assert setup.attempts("a") == [("retry", "-1"), ("retry", None), ("sent", "0")]
    assert setup.sleeps == [1.0, 2.0]  # backoff_s, doubled
    assert setup.status("a") == ("sent", None)


def test_wechat_errors_that_are_not_transient_fail_and_give_the_credit_back(
    setup: Setup,
) -> None:
    fake = FakeWeChat(script=[40003, 47003])
    wechat_account(setup, fake)
    queue(setup, "wechat", ["a", "b"], credits=2)
    with serving(fake) as url:
        report = setup.deliver(url)
    assert (report.failed, report.attempts) == (2, 2)
    assert setup.attempts("a") == [("failed", "40003")]
    assert setup.status("b") == ("failed", "channel_error")
    assert subscriptions_of(setup.engine, setup.app.app_id, "u1")[0]["credits"] == 2


def test_a_channel_down_for_the_whole_run_requeues_its_messages(setup: Setup) -> None:
    fake = FakeWeChat(script=[("http", 502)] * 4)
    fake.grant(OPENID, "tmpl-winback_coupon-wechat", 2)
    wechat_account(setup, fake)
    queue(setup, "wechat", ["a", "b"])
    with serving(fake) as url:
        report = setup.deliver(url)
        assert (report.requeued, report.attempts, report.sent) == (2, 4, 0)
        assert {setup.status(k)[0] for k in ("a", "b")} == {"queued"}
        # later, the platform is back
        later = deliver_due(
            setup.engine, setup.app, datetime(2026, 11, 20, 5, 0, tzinfo=UTC),
            rules=rules(per_day=5, per_month=10), clock=lambda: NOON, sleep=setup.sleeps.append,
            settings=Settings(wechat_api_base=url),
        )  # fmt: skip
    assert later.sent == 2


# --- Alipay -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {"app": rsa_pair(), "alipay": rsa_pair()}


def alipay_fake(keys: dict[str, tuple[str, str]], **kw: Any) -> FakeAlipay:
    return FakeAlipay("2021000000000001", keys["app"][1], keys["alipay"][0], **kw)


def alipay_account(s: Setup, keys: dict[str, tuple[str, str]]) -> None:
    set_account(
        s.engine, s.app.app_id, "alipay", {"app_id": "2021000000000001"},
        {"private_key": keys["app"][0], "alipay_public_key": keys["alipay"][1]}, NOON,
    )  # fmt: skip


def test_alipay_requests_are_signed_and_answers_checked(
    setup: Setup, keys: dict[str, tuple[str, str]]
) -> None:
    fake = alipay_fake(
        keys, script=[("20000", "isp.unknow-error"), ("40004", "USER_NOT_SUBSCRIBED")]
    )
    alipay_account(setup, keys)
    queue(setup, "alipay", ["a", "b", "c"], credits=3)
    a_rules = rules(per_day=5, per_month=10, channels=("alipay",))
    with serving(fake) as url:
        report = setup.deliver(url, a_rules)
    # "a": 20000 (retried), then 40004 (failed, with the sub_code); "b", "c" sent
    assert setup.attempts("a") == [("retry", "20000/isp.unknow-error"),
                                   ("failed", "40004/USER_NOT_SUBSCRIBED")]  # fmt: skip
    assert (report.sent, report.failed) == (2, 1)
    first = fake.requests[0]
    assert fake.verify_request(first)  # the fake server checked it with the app's public key
    assert first["method"] == "alipay.open.app.mini.templatemessage.send"
    assert (first["sign_type"], first["charset"], first["version"]) == ("RSA2", "utf-8", "1.0")
    biz = json.loads(first["biz_content"])
    assert biz["to_user_id"] == "2088000000000001"
    assert biz["user_template_id"] == "tmpl-winback_coupon-alipay"
    assert json.loads(biz["data"])["thing1"] == {"value": "20 元券"}


def test_an_alipay_answer_with_a_bad_signature_is_not_trusted(
    setup: Setup, keys: dict[str, tuple[str, str]]
) -> None:
    fake = alipay_fake(keys, tamper=True)
    alipay_account(setup, keys)
    queue(setup, "alipay", ["a"], credits=1)
    with serving(fake) as url:
        report = setup.deliver(url, rules(per_day=5, per_month=10, channels=("alipay",)))
    assert report.failed == 1 and setup.attempts("a") == [("failed", "10000")]
    # a request signed with another key is refused by the gateway
    other = rsa_pair()
    set_account(setup.engine, setup.app.app_id, "alipay", {"app_id": "2021000000000001"},
                {"private_key": other[0]}, NOON)  # fmt: skip
    fake.tamper = False
    queue(setup, "alipay", ["b"], credits=1, user="u2")
    with serving(fake) as url:
        setup.deliver(url, rules(per_day=5, per_month=10, channels=("alipay",)))
    assert setup.attempts("b") == [("failed", "40002/isv.invalid-signature")]


def test_rsa2_agrees_with_openssl(keys: dict[str, tuple[str, str]]) -> None:
    private, public = keys["app"]
    text = 'app_id=2021&biz_content={"a":"券"}&charset=utf-8'
    ours = base64.b64encode(rsa2.sign(text.encode(), rsa2.load_private_key(private))).decode()
    assert openssl_verify(text, ours, public)
    theirs = openssl_sign(text, private)
    assert ours == theirs  # PKCS#1 v1.5 signatures are deterministic
    assert rsa2.verify(text.encode(), base64.b64decode(theirs), rsa2.load_public_key(public))
    assert not rsa2.verify(b"other", base64.b64decode(theirs), rsa2.load_public_key(public))
    # PKCS#1 ("BEGIN RSA PRIVATE KEY") keys and bare base64 public keys load too
    traditional, pub = rsa_pair(traditional=True)
    assert "BEGIN RSA PRIVATE KEY" in traditional
    bare = "".join(pub.splitlines()[1:-1])
    sig = rsa2.sign(b"x", rsa2.load_private_key(traditional))
    assert rsa2.verify(b"x", sig, rsa2.load_public_key(bare))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "k").write_text(traditional)
        out = subprocess.run(["openssl", "rsa", "-in", f"{tmp}/k", "-check", "-noout"],
                             capture_output=True, check=False)  # fmt: skip
        assert out.returncode == 0


def test_channel_accounts_keep_their_secrets(
    setup: Setup, keys: dict[str, tuple[str, str]]
) -> None:
    alipay_account(setup, keys)
    shown = channel_accounts(setup.engine, setup.app.app_id)
    assert shown[0]["secrets_set"] == ["alipay_public_key", "private_key"]
    assert keys["app"][0] not in json.dumps(shown, default=str)
    with pytest.raises(MessageError) as bad:
        bad_key = {"private_key": "not a key", "alipay_public_key": keys["alipay"][1]}
        set_account(setup.engine, setup.app.app_id, "alipay", {"app_id": "x"}, bad_key, NOON)
    assert bad.value.code == "bad_channel_account"
    with pytest.raises(MessageError) as unknown:
        set_account(setup.engine, setup.app.app_id, "sms", {}, {}, NOON)
    assert unknown.value.status == 404


# --- webhook ----------------------------------------------------------------------------


def test_the_webhook_is_signed_retried_and_refused_on_4xx(setup: Setup) -> None:
    fake = FakeWebhook(SECRET, script=[500, 200, 400])
    wh_rules = rules(per_day=5, per_month=10, channels=("webhook",))
    with serving(fake) as url:
        set_account(setup.engine, setup.app.app_id, "webhook", {"url": url + "/hook"},
                    {"secret": SECRET}, NOON)  # fmt: skip
        queue(setup, "webhook", ["a", "b"])
        report = setup.deliver(url, wh_rules)
    assert (report.sent, report.failed, fake.bad_signatures) == (1, 1, 0)
    assert setup.attempts("a") == [("retry", None), ("sent", None)]
    assert setup.attempts("b") == [("failed", None)]
    got = fake.received[0]
    assert got["headers"]["idempotency-key"] == "a"
    assert got["body"]["data"] == {"thing1": "20 元券", "thing2": "专属福利已到账，点击使用"}
    # a receiver's check fails for another secret or an old timestamp
    body = b'{"x":1}'
    ts = "1700000000"
    from liucun.engage.channels.webhook import signature

    signed = signature(SECRET, ts, body)
    assert verify(SECRET, ts, body, signed, 1700000100)
    assert not verify("another-secret-000000", ts, body, signed, 1700000100)
    assert not verify(SECRET, ts, body, signed, 1700000000 + 301)
    assert {TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower()} <= set(got["headers"])
