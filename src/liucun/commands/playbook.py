"""`liucun playbook …`: validate, show, diff and apply the playbook."""

from __future__ import annotations

import typer

cli = typer.Typer(help="The playbook: strategies as data 运营手册.", no_args_is_help=True)
