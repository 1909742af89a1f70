"""The docs name every setting, command and standard event that the code has."""

from pathlib import Path

import typer

from liucun.cli import app
from liucun.config import Settings
from liucun.events.standard import STANDARD_EVENTS

DOCS = Path(__file__).parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    for name in Settings.model_fields:
        assert f"`LIUCUN_{name.upper()}`" in text, name


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    names = [f"{prefix}{c.name or c.callback.__name__}" for c in group.registered_commands]  # type: ignore[union-attr]
    for sub in group.registered_groups:
        names += _commands(sub.typer_instance, f"{prefix}{sub.name} ")  # type: ignore[arg-type]
    return names


def test_every_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    commands = _commands(app)
    assert {"demo", "serve", "import", "simulate", "apps create", "events export"} <= set(commands)
    for name in commands:
        assert f"`liucun {name}" in text, name


def test_every_standard_event_is_documented_with_its_fields() -> None:
    lines = {
        line.split("|")[1].strip(" `"): line
        for line in (DOCS / "events.md").read_text().splitlines()
        if line.startswith("| `")
    }
    for name, spec in STANDARD_EVENTS.items():
        assert name in lines, name
        for required in spec.required:
            assert f"`{required}`" in lines[name], (name, required)
        for prop in spec.required_properties:
            assert f"`properties.{prop}`" in lines[name], (name, prop)
