"""`liucun churn bgnbd`: BG/NBD "probability alive" and expected purchases of an app's buyers."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        console.fail(f"{option} {value!r} is not a date: use YYYY-MM-DD", code=2)


def register(churn_cli: typer.Typer) -> None:
    """Add the BG/NBD command to the `liucun churn` group."""

    @churn_cli.command("bgnbd")
    def bgnbd_command(
        app_ref: AppOption,
        calibration_end: Annotated[
            str,
            typer.Option(
                "--calibration-end", help="Last local day the model learns from, YYYY-MM-DD."
            ),
        ],
        holdout_end: Annotated[
            str | None,
            typer.Option(
                "--holdout-end",
                help="Last local day of a holdout: forecast its repeat purchases beside the "
                "actual count.",
            ),
        ] = None,
        top: Annotated[
            int, typer.Option("--top", min=1, help="Valuable buyers listed, lowest P(alive).")
        ] = 10,
        as_json: JsonOption = False,
    ) -> None:
        """BG/NBD (Fader, Hardie & Lee 2005) on the app's buyers: parameters, the valuable
        buyers least likely alive, and a holdout check (docs/bgnbd.md)."""
        from liucun.lifecycle.buyers import BGNBDError, bgnbd_report
        from liucun.local import open_store_or_server
        from liucun.server_file import ServerClient

        calibration = _day(calibration_end, "--calibration-end")
        assert calibration is not None
        holdout = _day(holdout_end, "--holdout-end")
        s = settings()
        found = resolve_app(s, app_ref)
        store = open_store_or_server(s)
        if isinstance(store, ServerClient):
            console.fail(
                "the event store is held by the running server, and BG/NBD reads it directly: "
                "stop `liucun serve` first, or use a ClickHouse event store (scale-out.md)"
            )
        try:
            with console.progress("BG/NBD", total=None) as bar:
                task = bar.tasks[0].id

                def step(what: str) -> None:
                    bar.update(task, description=f"BG/NBD: {what}")

                report = bgnbd_report(
                    store, found.app_id, found.timezone, calibration, holdout, top, step
                )
        except BGNBDError as exc:
            console.fail(str(exc), code=2)
        finally:
            store.close()

        if as_json:
            console.print_json(asdict(report))
            return
        p = report.params
        console.print_table(
            f"BG/NBD 模型参数 parameters — {report.buyers} 买家 buyers, "
            f"{report.repeat_buyers} 复购 repeat, to {report.calibration_end}",
            ["r", "α alpha", "a", "b", "log-likelihood"],
            [
                (
                    f"{p.r:.4f}",
                    f"{p.alpha:.4f}",
                    f"{p.a:.4f}",
                    f"{p.b:.4f}",
                    f"{p.log_likelihood:.1f}",
                )
            ],
        )
        forecast_header = ["预计复购 E(holdout)"] if report.holdout else []
        console.print_table(
            "高价值买家中存活概率最低 valuable buyers least likely alive",
            ["person", "x", "t_x (wk)", "T (wk)", "amount", "P(alive)", *forecast_header],
            [
                (
                    b.person,
                    b.x,
                    f"{b.t_x:.1f}",
                    f"{b.T:.1f}",
                    b.amount,
                    f"{b.p_alive:.3f}",
                    *([f"{b.expected_purchases:.2f}"] if b.expected_purchases is not None else []),
                )
                for b in report.at_risk
            ],
        )
        if report.holdout:
            h = report.holdout
            console.print_table(
                f"留出期 holdout {report.calibration_end} → {report.holdout_end} "
                f"({h.weeks:.1f} wk)",
                ["复购预测 forecast repeat purchases", "实际 actual"],
                [(f"{h.forecast:.1f}", h.actual)],
            )
