"""Who the dashboard's visitor is: the admin token of their session, and the apps it opens."""

from __future__ import annotations

from fastapi import HTTPException, Request

from liucun.api.runtime import Runtime
from liucun.state.apps import App, app_by_admin_token, list_apps
from liucun.web.session import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Session,
    csrf_ok,
    session_key,
    unseal,
)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def key_of(request: Request) -> bytes:
    return session_key(runtime_of(request).settings.data_dir)


def current_session(request: Request) -> Session | None:
    """The visitor's session, if their cookie holds a valid, unexpired one."""
    return unseal(key_of(request), request.cookies.get(SESSION_COOKIE))


def cookie_token(request: Request) -> str | None:
    """The admin token of the request's session cookie (None without one); a write made
    with the cookie and without the page's CSRF token is refused (403)."""
    session = current_session(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_ok(
        key_of(request), session, request.headers.get(CSRF_HEADER)
    ):
        raise HTTPException(
            403, f"a write made with the dashboard's session needs its {CSRF_HEADER} header"
        )
    return session.token


def token_apps(runtime: Runtime, token: str) -> list[App] | None:
    """The apps `token` administers: every app for the server's token, its own app for an
    app's token; None when it is neither (a wrong token)."""
    if runtime.is_server_admin(token):
        return list_apps(runtime.state)
    app = app_by_admin_token(runtime.state, token)
    return None if app is None else [app]
