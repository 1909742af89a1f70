"""What every command shares: settings, the state store, finding an app, common options."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer

from liucun import console
from liucun.config import Settings, SettingsError, load_settings
from liucun.state.apps import App, AppError, find_app
from liucun.state.db import open_state

AppOption = Annotated[str, typer.Option("--app", help="App name or id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        console.fail(str(exc), code=2)


def state_engine(s: Settings) -> sa.Engine:
    try:
        return open_state(s.state_store_url)
    except Exception as exc:  # the URL reached nothing usable: say which setting to fix
        console.fail(
            f"cannot open the state store {s.state_store_url}: {exc}\n"
            "check LIUCUN_STATE_STORE (or LIUCUN_DATA_DIR)"
        )


def resolve_app(s: Settings, ref: str) -> App:
    try:
        return find_app(state_engine(s), ref)
    except AppError as exc:
        console.fail(str(exc))
