"""Request dependencies: the runtime, the request body within limits, the caller's credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from liucun.api.runtime import Runtime
from liucun.events.ingest import PayloadError


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def read_body(request: Request, runtime: Runtime) -> bytes:
    """The request body as sent, refused with 413 once it passes the size limit."""
    limit = runtime.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadError(f"body is {declared} bytes; the limit is {limit}", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(f"body is over the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


def admin_token(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    token = bearer(authorization)
    if token is None:
        # the dashboard's session cookie stands in for the header (web/session.py)
        from liucun.web.auth import cookie_token

        token = cookie_token(request)
    if token is None:
        raise HTTPException(401, "send the admin token as `Authorization: Bearer <token>`")
    return token


AdminToken = Annotated[str, Depends(admin_token)]
