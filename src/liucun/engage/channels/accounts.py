"""An app's accounts on the channels, kept in the state store so every server sends with them.

- wechat: settings `appid`, `miniprogram_state` (formal, trial or developer; default formal),
  `lang` (zh_CN, en_US, zh_HK or zh_TW; default zh_CN); secret `secret` (the AppSecret).
- alipay: settings `app_id`; secrets `private_key` (the app's RSA private key, PEM, which signs
  requests) and `alipay_public_key` (Alipay's public key, PEM, which checks its answers).
- webhook: settings `url` (http or https); secret `secret` (at least 16 characters; it signs
  every POST, docs/messages.md#webhook).

Secrets are stored, never shown: the API and CLI show which secrets are set, not their values.
Setting an account again without a secret keeps the one stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import orjson
import sqlalchemy as sa

from liucun.engage.caps import upsert
from liucun.engage.message_errors import MessageError
from liucun.loyalty.members import as_utc
from liucun.state.db import write_transaction
from liucun.state.tables import engage_channel_accounts

FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # channel: (settings, secrets)
    "wechat": (("appid", "miniprogram_state", "lang"), ("secret",)),
    "alipay": (("app_id",), ("private_key", "alipay_public_key")),
    "webhook": (("url",), ("secret",)),
}
DEFAULTS = {"wechat": {"miniprogram_state": "formal", "lang": "zh_CN"}}
CHOICES = {
    "miniprogram_state": ("formal", "trial", "developer"),
    "lang": ("zh_CN", "en_US", "zh_HK", "zh_TW"),
}


@dataclass(frozen=True)
class Account:
    channel: str
    settings: dict[str, str]
    secrets: dict[str, str]


def _refuse(code: str, message: str, zh: str) -> MessageError:
    return MessageError(code, message, zh, status=422)


def _check_pem(name: str, text: str, private: bool) -> None:
    from liucun.engage.channels import rsa2

    try:
        (rsa2.load_private_key if private else rsa2.load_public_key)(text)
    except rsa2.RSAKeyError:
        kind = "private" if private else "public"
        raise _refuse(
            "bad_channel_account",
            f"{name}: expected an RSA {kind} key, PEM (-----BEGIN ...-----) or base64",
            f"{name}:须为 PEM 或 base64 格式的 RSA {'私钥' if private else '公钥'}",
        ) from None


def _check(channel: str, settings: dict[str, str], secrets: dict[str, str]) -> None:
    if channel not in FIELDS:
        raise MessageError(
            "unknown_channel",
            f"no channel {channel!r}: use wechat, alipay or webhook",
            f"没有 {channel!r} 渠道:请用 wechat、alipay 或 webhook",
            status=404,
        )
    names, secret_names = FIELDS[channel]
    for key, value in {**settings, **secrets}.items():
        if key not in names + secret_names:
            raise _refuse(
                "bad_channel_account",
                f"{channel} accounts have {', '.join(names + secret_names)}, not {key!r}",
                f"{channel} 账号的字段为 {'、'.join(names + secret_names)},没有 {key!r}",
            )
        if not isinstance(value, str) or not value.strip() or len(value) > 8000:
            raise _refuse(
                "bad_channel_account",
                f"{key}: a non-empty text of at most 8000 characters",
                f"{key}:须为不超过 8000 个字符的非空文本",
            )
    for key, value in settings.items():
        if key in CHOICES and value not in CHOICES[key]:
            raise _refuse(
                "bad_channel_account",
                f"{key}: one of {', '.join(CHOICES[key])}",
                f"{key}:须为 {'、'.join(CHOICES[key])} 之一",
            )
    missing = [n for n in names if n not in settings and n not in DEFAULTS.get(channel, {})]
    missing += [n for n in secret_names if n not in secrets]
    if missing:
        raise _refuse(
            "bad_channel_account",
            f"a {channel} account needs {', '.join(missing)}",
            f"{channel} 账号缺少 {'、'.join(missing)}",
        )
    if channel == "webhook":
        url = urlparse(settings["url"])
        if url.scheme not in ("http", "https") or not url.netloc:
            raise _refuse(
                "bad_channel_account",
                "url: an http(s) URL such as https://example.com/hooks/liucun",
                "url:须为 http(s) 地址,如 https://example.com/hooks/liucun",
            )
        if len(secrets["secret"]) < 16:
            raise _refuse(
                "bad_channel_account",
                "secret: at least 16 characters (it signs every POST)",
                "secret:至少 16 个字符(用于给每次推送签名)",
            )
    if channel == "alipay":
        _check_pem("private_key", secrets["private_key"], private=True)
        _check_pem("alipay_public_key", secrets["alipay_public_key"], private=False)


def set_account(
    engine: sa.Engine,
    app_id: str,
    channel: str,
    settings: dict[str, str],
    secrets: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """Store the app's account on `channel` (secrets left out keep the stored ones); answers
    the account as `account_json` shows it."""
    with write_transaction(engine) as conn:
        a = engage_channel_accounts.c
        old = conn.execute(
            sa.select(a.secrets, a.settings)
            .where(a.app_id == app_id, a.channel == channel)
            .with_for_update()
        ).first()
        kept = orjson.loads(old.secrets) if old is not None else {}
        secrets = {**kept, **secrets}
        settings = {**DEFAULTS.get(channel, {}), **settings}
        _check(channel, settings, secrets)
        same_login = (
            old is not None
            and orjson.loads(old.settings).get("appid") == settings.get("appid")
            and kept.get("secret") == secrets.get("secret")
        )
        row = {
            "app_id": app_id,
            "channel": channel,
            "settings": orjson.dumps(settings).decode(),
            "secrets": orjson.dumps(secrets).decode(),
            "updated_at": now,
            "access_token": None,
            "token_expires_at": None,
        }
        # a new WeChat appid or secret makes the cached access token another app's
        update = ["settings", "secrets", "updated_at"]
        upsert(
            conn,
            engage_channel_accounts,
            [row],
            update if same_login else [*update, "access_token", "token_expires_at"],
        )
    return account_json(channel, settings, secrets, now)


def account_json(
    channel: str, settings: dict[str, str], secrets: dict[str, str], updated_at: datetime
) -> dict[str, Any]:
    """An account as the API shows it: settings, and the names of the secrets that are set."""
    return {
        "channel": channel,
        "settings": settings,
        "secrets_set": sorted(secrets),
        "updated_at": as_utc(updated_at),
    }


def channel_accounts(engine: sa.Engine, app_id: str) -> list[dict[str, Any]]:
    """The app's channel accounts, without secret values."""
    a = engage_channel_accounts.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.channel, a.settings, a.secrets, a.updated_at)
            .where(a.app_id == app_id)
            .order_by(a.channel)
        ).all()
    return [
        account_json(r.channel, orjson.loads(r.settings), orjson.loads(r.secrets), r.updated_at)
        for r in rows
    ]


def configured_channels(engine: sa.Engine, app_id: str) -> set[str]:
    a = engage_channel_accounts.c
    with engine.connect() as conn:
        return set(conn.execute(sa.select(a.channel).where(a.app_id == app_id)).scalars())


def load_account(engine: sa.Engine, app_id: str, channel: str) -> Account | None:
    """The account with its secrets, for a channel adapter; None when not set."""
    a = engage_channel_accounts.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(a.settings, a.secrets).where(a.app_id == app_id, a.channel == channel)
        ).first()
    if row is None:
        return None
    return Account(channel, orjson.loads(row.settings), orjson.loads(row.secrets))
