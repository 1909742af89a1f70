"""`liucun churn bgnbd`: BG/NBD "probability alive" and expected purchases of an app's buyers."""

from __future__ import annotations

import typer


def register(churn_cli: typer.Typer) -> None:
    """Add the BG/NBD command to the `liucun churn` group."""
