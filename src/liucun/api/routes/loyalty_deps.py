"""What every loyalty route shares: the user a token names, the programme in force, the clock.

Client routes (`/v1/loyalty/...`) take the user from a user token (`Authorization: Bearer
<token>`, minted by the app's backend; loyalty/tokens.py): the public write key cannot say who
the user is. Admin routes (`/admin/v1/apps/{app}/loyalty/...`) take an admin token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from liucun.api.deps import RuntimeDep, bearer
from liucun.api.routes.admin import admin_app
from liucun.api.runtime import KEY_CACHE_SECONDS, Runtime
from liucun.loyalty.errors import LoyaltyError
from liucun.loyalty.programme import Programme, programme_of
from liucun.loyalty.tokens import live_secret, token_key_id, verify_user_token
from liucun.state.apps import App

USER_TOKEN_HELP = (
    "send the user token your backend minted as `Authorization: Bearer <token>` "
    "(docs/loyalty.md#user-tokens)"
)


@dataclass(frozen=True)
class ClientUser:
    """The caller of a client route: a user of an app, under the programme in force."""

    app: App
    user_id: str
    prog: Programme
    now: datetime


def client_user(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> ClientUser:
    """The user a valid user token names; 401 saying what is wrong otherwise."""
    token = bearer(authorization)
    if token is None:
        raise HTTPException(401, USER_TOKEN_HELP)
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    app_id = claims.get("aud") if isinstance(claims, dict) else None
    app = runtime.app_by_id(app_id) if isinstance(app_id, str) else None
    if app is None:
        raise HTTPException(401, "the user token names no known app in `aud`: " + USER_TOKEN_HELP)
    kid = token_key_id(token)
    secret = runtime.cached(
        "signing-key",
        f"{app.app_id}:{kid}",
        KEY_CACHE_SECONDS,
        lambda: live_secret(runtime.state, app.app_id, kid),
    )
    if secret is None:
        raise HTTPException(
            401,
            f"the user token's signing key {kid!r} is unknown or retired: create one with "
            "`liucun loyalty signing-key create`",
        )
    now = runtime.clock()
    user = verify_user_token(
        token, app.app_id, secret, now, runtime.settings.user_token_max_seconds
    )
    return ClientUser(app, user.user_id, runtime.programme(app), now)


ClientDep = Annotated[ClientUser, Depends(client_user)]


@dataclass(frozen=True)
class AdminApp:
    app: App
    prog: Programme
    now: datetime


def admin_programme(runtime: Runtime, token: str, app_ref: str) -> AdminApp:
    app = admin_app(runtime, token, app_ref)
    return AdminApp(app, programme_of(runtime.state, app), runtime.clock())


async def loyalty_error(_request: Request, exc: Exception) -> JSONResponse:
    """A refused loyalty request: `{"detail": {"code", "message", "zh"}}` with its status."""
    assert isinstance(exc, LoyaltyError)
    return JSONResponse({"detail": exc.as_json()}, status_code=exc.status)


def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(description="Your key for this write: a retry with the same key changes nothing."),
    ] = None,
) -> str:
    """The `Idempotency-Key` header every loyalty write carries; 422 when it is missing."""
    if not idempotency_key or not idempotency_key.strip() or len(idempotency_key) > 200:
        raise HTTPException(
            422,
            "send an `Idempotency-Key` header (1–200 characters, e.g. a UUID or your order id): "
            "a retry with the same key changes nothing",
        )
    return idempotency_key.strip()


KeyDep = Annotated[str, Depends(idempotency_key)]
