"""`liucun churn …`: the churn-risk model (train, score) and BG/NBD for buyers."""

from __future__ import annotations

import typer

cli = typer.Typer(help="Churn risk 流失风险: model training, scores, BG/NBD.", no_args_is_help=True)
