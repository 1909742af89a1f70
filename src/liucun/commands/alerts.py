"""`liucun alerts …`: check the early-warning rules, list alerts, deliver them."""

from __future__ import annotations

import typer

cli = typer.Typer(help="Early warning 预警: alerts and their delivery.", no_args_is_help=True)
