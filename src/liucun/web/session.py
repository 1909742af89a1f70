"""The dashboard's login session: an encrypted, signed, expiring cookie holding the admin token.

After a login with an admin token (the server's or an app's), the browser keeps the cookie
`liucun_session`: the token sealed with Fernet (AES-128-CBC and HMAC-SHA256, with its issue
time, so it is unreadable, untamperable and expires after `SESSION_SECONDS`). It is HttpOnly
(scripts cannot read it) and SameSite=Strict (other sites' pages cannot make the browser send
it). The admin API accepts it in place of `Authorization: Bearer` (api/deps.py), so the
dashboard's scripts call the documented API itself and see exactly what it serves.

Writes (POST, PUT, PATCH, DELETE) made with the cookie must also carry `X-CSRF-Token`: an HMAC
of the session's random id that the dashboard puts in each page it serves; a page of another
site can neither read it nor send a custom header without a CORS preflight this server never
grants. The token in the cookie is checked on every request as a bearer token is, so a
rotated or deleted app token ends its sessions at once.

The key lives in `<data_dir>/dashboard.key` (mode 0600), made on first use: sessions survive a
restart. Servers behind one load balancer need the same file (docs/dashboard.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

SESSION_COOKIE = "liucun_session"
LANG_COOKIE = "liucun_lang"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
KEY_FILE = "dashboard.key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_keys: dict[Path, bytes] = {}


@dataclass(frozen=True)
class Session:
    token: str
    sid: str  # random per login: what the CSRF token is derived from


def session_key(data_dir: Path) -> bytes:
    """The Fernet key of `data_dir`, created (readable by its owner only) on first use."""
    path = (data_dir / KEY_FILE).resolve()
    if path in _keys:
        return _keys[path]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
    else:
        key = Fernet.generate_key()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    Fernet(key)  # a damaged file fails here, loudly, rather than every login later
    _keys[path] = key
    return key


def seal(key: bytes, token: str) -> tuple[str, Session]:
    """A new session for `token`: the cookie value and the session it holds."""
    session = Session(token, secrets.token_urlsafe(16))
    value = Fernet(key).encrypt(orjson.dumps({"t": session.token, "s": session.sid}))
    return value.decode(), session


def unseal(key: bytes, cookie: str | None) -> Session | None:
    """The session in `cookie`, or None when it is absent, forged, damaged or expired."""
    if not cookie:
        return None
    try:
        data = orjson.loads(Fernet(key).decrypt(cookie.encode(), ttl=SESSION_SECONDS))
        return Session(str(data["t"]), str(data["s"]))
    except (InvalidToken, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def csrf_token(key: bytes, session: Session) -> str:
    """The value writes made with `session`'s cookie must send in `X-CSRF-Token`."""
    digest = hmac.new(key, b"csrf:" + session.sid.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_ok(key: bytes, session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(key, session), sent or "")
