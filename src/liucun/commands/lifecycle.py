"""`liucun lifecycle` and `liucun winback`: users' lifecycle labels and win-back lists."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to the main CLI."""
