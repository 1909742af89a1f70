"""User tokens: what a client endpoint that touches a user's points, coupons or rewards needs.

The write key ships inside the mini-program, so anyone can read it; it cannot say who the user
is. The app's own backend, after its login (e.g. WeChat `code2Session`), mints a short-lived
token for the user: a JWT signed with HS256 under one of the app's signing keys, whose header
names the key (`kid`) and whose claims bind it to the app (`aud`: the app id) and the user
(`sub`), with `iat` and `exp`. Any JWT library can mint one (docs/loyalty.md#user-tokens).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
import sqlalchemy as sa

from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.members import as_utc
from liucun.state.tables import app_signing_keys

ALGORITHM = "HS256"
# clocks of the app's backend and ours may disagree by this much
LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: str | None  # only when created: it is not shown again
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class TokenUser:
    app_id: str
    user_id: str
    expires_at: datetime


def create_signing_key(engine: sa.Engine, app_id: str, now: datetime) -> SigningKey:
    """A new signing key for `app_id`; the ones before it stay valid until retired."""
    key = SigningKey("sk_" + secrets.token_hex(6), secrets.token_urlsafe(48), now, None)
    with engine.begin() as conn:
        conn.execute(
            app_signing_keys.insert().values(
                app_id=app_id, key_id=key.key_id, secret=key.secret, created_at=now
            )
        )
    return key


def retire_signing_key(engine: sa.Engine, app_id: str, key_id: str, now: datetime) -> bool:
    """Stop accepting tokens signed with `key_id`; False if the app has no such live key."""
    k = app_signing_keys.c
    with engine.begin() as conn:
        done = conn.execute(
            app_signing_keys.update()
            .where(k.app_id == app_id, k.key_id == key_id, k.retired_at.is_(None))
            .values(retired_at=now)
        )
    return done.rowcount == 1


def signing_keys(engine: sa.Engine, app_id: str) -> list[SigningKey]:
    """The app's signing keys, newest first, without their secrets."""
    k = app_signing_keys.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(k.key_id, k.created_at, k.retired_at)
            .where(k.app_id == app_id)
            .order_by(k.created_at.desc())
        ).all()
    return [
        SigningKey(r.key_id, None, as_utc(r.created_at), r.retired_at and as_utc(r.retired_at))
        for r in rows
    ]


def live_secret(engine: sa.Engine, app_id: str, key_id: str) -> str | None:
    k = app_signing_keys.c
    with engine.connect() as conn:
        secret: str | None = conn.execute(
            sa.select(k.secret).where(
                k.app_id == app_id, k.key_id == key_id, k.retired_at.is_(None)
            )
        ).scalar()
    return secret


def mint_user_token(
    app_id: str, user_id: str, key_id: str, secret: str, now: datetime, ttl_seconds: int
) -> str:
    """What the app's backend does after its login (here for tests, the CLI and docs)."""
    claims = {
        "aud": app_id,
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": key_id})


def _refused(message: str, zh: str) -> LoyaltyError:
    return LoyaltyError("bad_user_token", message, zh, status=401)


def token_key_id(token: str) -> str:
    """The `kid` the token names (unverified: it only picks the secret to verify with)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _refused(
            "the user token is not a JWT: mint it on your backend (docs/loyalty.md#user-tokens)",
            "用户令牌不是 JWT:请由你的后端签发(见 docs/loyalty.md#user-tokens)",
        ) from None
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") != ALGORITHM:
        raise _refused(
            f"the user token's header must name its signing key (kid) and use {ALGORITHM}",
            f"用户令牌的头部须包含签名密钥 ID(kid)并使用 {ALGORITHM}",
        )
    return kid


def verify_user_token(
    token: str, app_id: str, secret: str, now: datetime, max_ttl_seconds: int
) -> TokenUser:
    """The app and user the token names, if `secret` signed it for `app_id`, it has not
    expired at `now`, and it was minted for no longer than `max_ttl_seconds`."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=app_id,
            leeway=LEEWAY_SECONDS,
            # expiry is checked below against `now`, the caller's clock (tests move it)
            options={
                "require": ["exp", "iat", "sub", "aud"],
                "verify_iat": False,
                "verify_exp": False,
            },
        )
        expires = datetime.fromtimestamp(claims["exp"], now.tzinfo)
        issued = datetime.fromtimestamp(claims["iat"], now.tzinfo)
    except jwt.InvalidAudienceError:
        raise _refused("the user token is for another app", "用户令牌属于其他应用") from None
    except jwt.PyJWTError as exc:
        raise _refused(f"the user token is invalid: {exc}", f"用户令牌无效:{exc}") from None
    if expires + timedelta(seconds=LEEWAY_SECONDS) < now:
        raise _refused("the user token has expired: mint a new one", "用户令牌已过期,请重新签发")
    if (expires - issued).total_seconds() > max_ttl_seconds:
        raise _refused(
            f"the user token lives longer than {max_ttl_seconds} s: mint shorter-lived tokens",
            f"用户令牌有效期超过 {max_ttl_seconds} 秒,请签发更短有效期的令牌",
        )
    user = claims["sub"]
    if not isinstance(user, str) or not user:
        raise _refused("the user token's sub must be the user id", "用户令牌的 sub 须为用户 ID")
    return TokenUser(app_id, user, expires)
