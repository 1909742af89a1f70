"""Apps (tenants) and their keys: a public write key for the SDK, a secret admin token."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from liucun.config import check_timezone
from liucun.state.tables import apps

APP_NAME_PATTERN = re.compile(r"^[\w\-. ]{1,100}$")


class AppError(ValueError):
    """An app cannot be created or found; the message says why."""


class AppExistsError(AppError):
    """An app of that name exists already (perhaps made a moment ago by another server)."""


@dataclass(frozen=True)
class App:
    app_id: str
    name: str
    timezone: str
    write_key: str


@dataclass(frozen=True)
class AppCredentials:
    """What `apps create` hands out once: the admin token is not stored in clear."""

    app_id: str
    name: str
    timezone: str
    write_key: str
    admin_token: str


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_app(engine: sa.Engine, name: str, timezone: str) -> AppCredentials:
    """Create an app named `name` whose days are cut in `timezone`."""
    if not APP_NAME_PATTERN.match(name) or name.strip() != name:
        raise AppError(
            f"app name {name!r} is invalid: use 1–100 letters, digits, spaces, '-', '_' or '.', "
            "without leading or trailing spaces"
        )
    if name.startswith("app_"):
        raise AppError("app names may not start with 'app_': that prefix marks app ids")
    check_timezone(timezone)
    creds = AppCredentials(
        app_id="app_" + secrets.token_hex(8),
        name=name,
        timezone=timezone,
        write_key="wk_" + secrets.token_urlsafe(24),
        admin_token="at_" + secrets.token_urlsafe(32),
    )
    row = {
        "app_id": creds.app_id,
        "name": name,
        "timezone": timezone,
        "write_key": creds.write_key,
        "admin_token_sha256": _sha256(creds.admin_token),
        "created_at": datetime.now(UTC),
    }
    try:
        with engine.begin() as conn:
            conn.execute(apps.insert().values(**row))
    except sa.exc.IntegrityError:
        raise AppExistsError(f"an app named {name!r} already exists") from None
    return creds


def _app(row: Sequence[Any] | None) -> App | None:
    return App(row[0], row[1], row[2], row[3]) if row else None


_APP_COLUMNS = (apps.c.app_id, apps.c.name, apps.c.timezone, apps.c.write_key)


def list_apps(engine: sa.Engine) -> list[App]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_APP_COLUMNS).order_by(apps.c.created_at)).all()
    return [a for a in map(_app, rows) if a]


def find_app(engine: sa.Engine, name_or_id: str) -> App:
    """The app whose id or name is `name_or_id`; AppError naming the known apps otherwise."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(*_APP_COLUMNS).where(
                sa.or_(apps.c.app_id == name_or_id, apps.c.name == name_or_id)
            )
        ).first()
    app = _app(row)
    if app is None:
        known = ", ".join(a.name for a in list_apps(engine)) or "none yet"
        raise AppError(
            f"no app named or with id {name_or_id!r} (apps: {known}); "
            "create one with `liucun apps create NAME`"
        )
    return app


def app_by_write_key(engine: sa.Engine, write_key: str) -> App | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_APP_COLUMNS).where(apps.c.write_key == write_key)).first()
    return _app(row)


def app_by_admin_token(engine: sa.Engine, token: str) -> App | None:
    """The app whose admin token is `token` (compared by hash, in constant time)."""
    digest = _sha256(token)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(*_APP_COLUMNS, apps.c.admin_token_sha256).where(
                apps.c.admin_token_sha256 == digest
            )
        ).first()
    if row is None or not hmac.compare_digest(row[4], digest):
        return None
    return App(*row[:4])
