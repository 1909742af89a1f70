"""Settings: one optional TOML file plus `LIUCUN_*` environment overrides.

The file is `liucun.toml` in the working directory, or the path in `LIUCUN_CONFIG`. Environment
variables win over the file. Every invalid value is reported with the name of its setting.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

EVENT_STORE_SCHEMES = ("duckdb", "clickhouse", "clickhouses", "chdb")
STATE_STORE_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")


class SettingsError(ValueError):
    """A setting is invalid; the message names it and says what is expected."""


def config_file() -> Path:
    return Path(os.environ.get("LIUCUN_CONFIG", "liucun.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIUCUN_", extra="forbid")

    data_dir: Path = Field(Path("./liucun-data"), description="Where embedded stores live.")
    event_store: str = Field(
        "", description="Event store URL; default duckdb:///<data_dir>/events.duckdb."
    )
    state_store: str = Field(
        "", description="State store URL; default sqlite:///<data_dir>/state.sqlite."
    )
    timezone: str = Field("Asia/Shanghai", description="Default time zone of new apps.")
    admin_token: str | None = Field(
        None, description="Server-wide admin token for /admin/v1 (all apps)."
    )
    max_batch_events: int = Field(5_000, ge=1, description="Most events in one HTTP batch.")
    ingest_workers: int = Field(
        -1,
        ge=-1,
        description="Processes that parse and check request bodies: -1 one per CPU (up to 4), "
        "0 none (checked in the server process).",
    )
    max_body_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest request body, after gzip is undone."
    )
    user_token_max_seconds: int = Field(
        86_400,
        ge=60,
        le=30 * 86_400,
        description="Longest lifetime a user token (minted by the app's backend) may have.",
    )
    wechat_api_base: str = Field(
        "https://api.weixin.qq.com",
        description="Base URL of the WeChat server API (subscribe messages, access tokens).",
    )
    alipay_gateway: str = Field(
        "https://openapi.alipay.com/gateway.do",
        description="Alipay open-platform gateway URL (mini-program template messages).",
    )
    deliver_every_s: float = Field(
        30.0,
        ge=0,
        description="Seconds between `serve`'s runs that send due subscribe messages (held "
        "ones go out when quiet hours end); 0 to leave it to `liucun messages deliver`.",
    )
    chromium: str = Field(
        "",
        description="The Chromium (or Chrome) that prints PDF reports; default: "
        "/usr/bin/chromium or `chromium` on the PATH.",
    )
    daily_at: str = Field(
        "02:00",
        description="App-local time after which `serve` runs each app's daily job for the "
        "day before (labels, churn-risk scores, alerts); `off` to leave it to cron.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file()))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        check_timezone(value)
        return value

    @field_validator("daily_at")
    @classmethod
    def _daily_time(cls, value: str) -> str:
        parse_daily_at(value)
        return value

    @field_validator("event_store")
    @classmethod
    def _event_store_scheme(cls, value: str) -> str:
        if value and value.split(":", 1)[0] not in EVENT_STORE_SCHEMES:
            raise ValueError(
                f"expected a URL like duckdb:///path/events.duckdb (schemes: "
                f"{', '.join(EVENT_STORE_SCHEMES)}), got {value!r}"
            )
        return value

    @field_validator("state_store")
    @classmethod
    def _state_store_scheme(cls, value: str) -> str:
        if value and value.split(":", 1)[0] not in STATE_STORE_SCHEMES:
            raise ValueError(
                f"expected sqlite:///path/state.sqlite or postgresql://user@host/db, got {value!r}"
            )
        return value

    @cached_property
    def event_store_url(self) -> str:
        return self.event_store or f"duckdb:///{self.data_dir.resolve() / 'events.duckdb'}"

    @cached_property
    def state_store_url(self) -> str:
        return self.state_store or f"sqlite:///{self.data_dir.resolve() / 'state.sqlite'}"


def check_timezone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or a ValueError that says what a valid name looks like."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai"
        ) from None


def parse_daily_at(value: str) -> time | None:
    """`HH:MM` (app-local), or None for "off"."""
    if value.strip().lower() in ("", "off", "none"):
        return None
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"expected a time like 02:00 (or off), got {value!r}") from None


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the file and the environment, naming the setting that is invalid."""
    path = config_file()
    if "LIUCUN_CONFIG" in os.environ and not path.is_file():
        raise SettingsError(f"LIUCUN_CONFIG points to {path}, which does not exist")
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        lines.append(
            f"setting LIUCUN_{name.upper()} (or `{name}` in {config_file()}) is invalid: "
            f"{err['msg']}"
        )
    return "\n".join(lines)
