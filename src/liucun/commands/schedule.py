"""`liucun daily`: run an app's daily job now (labels, churn-risk scores, alerts), as `serve`
does on its own after `LIUCUN_DAILY_AT`; for cron when the server's schedule is off."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from liucun import console
from liucun.commands.common import JsonOption, resolve_app, settings, state_engine
from liucun.server_file import ServerClient, ServerRefusedError

STATUS = {
    "done": "[green]done 完成[/]",
    "skipped": "[yellow]skipped 跳过[/]",
    "failed": "[red]failed 失败[/]",
}


def _summary(step: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in step.items() if k != "status")


def daily_command(
    app_ref: Annotated[str | None, typer.Option("--app", help="App name or id.")] = None,
    all_apps: Annotated[
        bool, typer.Option("--all", help="Every app of this installation.")
    ] = False,
    day: Annotated[
        str | None, typer.Option("--date", help="App-local day (default: the latest with data).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run even if the day's run is done already.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the daily job for a day: lifecycle labels, churn-risk scores (retraining when due),
    then the alert rules and webhook delivery. A day's run is done once across servers."""
    from liucun.lifecycle.daily import data_day
    from liucun.local import open_store_or_server
    from liucun.schedule.claims import claim, finish
    from liucun.schedule.daily import run_daily
    from liucun.schedule.scheduler import DAILY_JOB
    from liucun.state.apps import list_apps

    if (app_ref is None) == (not all_apps):
        console.fail("give --app A or --all", code=2)
    try:
        wanted = date.fromisoformat(day) if day else None
    except ValueError:
        console.fail(f"--date must be a date like 2026-10-31, got {day!r}", code=2)
    s = settings()
    engine = state_engine(s)
    apps = list_apps(engine) if all_apps else [resolve_app(s, app_ref or "")]
    target = open_store_or_server(s)
    reports: list[dict[str, Any]] = []
    try:
        for app in apps:
            if isinstance(target, ServerClient):
                params = {"date": wanted.isoformat() if wanted else None, "force": force}
                try:
                    reports.append(
                        target.post(
                            f"/admin/v1/apps/{app.app_id}/daily",
                            {k: v for k, v in params.items() if v},
                        )
                    )
                except ServerRefusedError as exc:
                    console.fail(str(exc), code=2)
                continue
            as_of = wanted or data_day(target, app)
            if not claim(engine, app.app_id, DAILY_JOB, as_of) and not force:
                reports.append({"app_id": app.app_id, "day": as_of.isoformat(), "ran": False})
                continue
            with console.progress(f"daily 每日任务 {app.name} {as_of}", 3) as bar:
                task = bar.task_ids[0]
                report = run_daily(target, engine, app, as_of, lambda *_, t=task: bar.advance(t))
            finish(engine, app.app_id, DAILY_JOB, as_of, report.ok, report.steps)
            reports.append(
                {"app_id": app.app_id, "day": as_of.isoformat(), "ran": True, "steps": report.steps}
            )
    finally:
        if not isinstance(target, ServerClient):
            target.close()
    if as_json:
        console.print_json(reports)
    else:
        for r in reports:
            if not r["ran"]:
                console.out.print(
                    f"{r['app_id']} {r['day']}: done already 已完成 (--force to rerun)"
                )
                continue
            console.print_table(
                f"daily 每日任务 · {r['app_id']} · {r['day']}",
                ["step 步骤", "status 状态", "what 内容"],
                [
                    (name, STATUS[step["status"]], _summary(step))
                    for name, step in r["steps"].items()
                ],
            )
    if any(
        r.get("ran") and any(st["status"] == "failed" for st in r["steps"].values())
        for r in reports
    ):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `liucun daily` to the main CLI."""
    app.command("daily")(daily_command)
