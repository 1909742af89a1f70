from pathlib import Path

import pytest

from liucun.config import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATA_DIR", "EVENT_STORE", "STATE_STORE", "TIMEZONE", "ADMIN_TOKEN", "CONFIG"):
        monkeypatch.delenv(f"LIUCUN_{name}", raising=False)
    s = load_settings()
    assert s.timezone == "Asia/Shanghai"
    assert s.event_store_url == f"duckdb:///{tmp_path / 'liucun-data' / 'events.duckdb'}"
    assert s.state_store_url == f"sqlite:///{tmp_path / 'liucun-data' / 'state.sqlite'}"
    assert s.admin_token is None


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "liucun.toml").write_text('timezone = "Europe/Berlin"\ndata_dir = "/srv/lc"\n')
    monkeypatch.setenv("LIUCUN_TIMEZONE", "America/New_York")
    s = load_settings()
    assert s.timezone == "America/New_York"
    assert s.data_dir == Path("/srv/lc")
    assert s.event_store_url == "duckdb:////srv/lc/events.duckdb"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LIUCUN_TIMEZONE", "Mars/Olympus", "LIUCUN_TIMEZONE"),
        ("LIUCUN_EVENT_STORE", "mysql://x", "LIUCUN_EVENT_STORE"),
        ("LIUCUN_STATE_STORE", "oracle://x", "LIUCUN_STATE_STORE"),
        ("LIUCUN_MAX_BATCH_EVENTS", "0", "LIUCUN_MAX_BATCH_EVENTS"),
    ],
)
def test_invalid_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=expected):
        load_settings()


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIUCUN_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match=r"nope\.toml"):
        load_settings()
