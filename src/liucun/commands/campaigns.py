"""`liucun campaigns …`: create, dry-run, launch, pause, run campaigns and read their results
(docs/campaigns.md). Commands that read events use the event store, or ask the server that
holds it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine

cli = typer.Typer(help="Campaigns 运营活动: holdouts, dry runs, results.", no_args_is_help=True)

CampaignArg = Annotated[str, typer.Argument(help="The campaign's id or name.")]
DayOption = Annotated[
    str | None, typer.Option("--date", help="App-local date YYYY-MM-DD (default: yesterday).")
]


def _refused(exc: Exception) -> None:
    from liucun.loyalty.errors import LoyaltyError

    if isinstance(exc, LoyaltyError):
        console.fail(f"{exc.zh}\n{exc} [{exc.code}]")
    raise exc


def _guard(work: Callable[[], Any]) -> Any:
    from liucun.lifecycle.daily import LifecycleError
    from liucun.loyalty.errors import LoyaltyError

    try:
        return work()
    except LoyaltyError as exc:
        _refused(exc)
    except LifecycleError as exc:
        console.fail(str(exc), code=2)


def _context(app_ref: str) -> tuple[Any, Any]:
    s = settings()
    return state_engine(s), resolve_app(s, app_ref)


def _with_events(app_ref: str, local: Callable[..., Any], remote: Callable[[Any, str], Any]) -> Any:
    """Run `local(store, engine, app)` on the event store, or `remote(server, app_id)` on the
    server that holds it."""
    from liucun.local import open_store_or_server
    from liucun.server_file import ServerClient

    s = settings()
    engine, app = state_engine(s), resolve_app(s, app_ref)
    store = open_store_or_server(s)
    if isinstance(store, ServerClient):
        return remote(store, app.app_id)
    try:
        return _guard(lambda: local(store, engine, app))
    finally:
        store.close()


def _show(campaign: dict[str, Any]) -> None:
    c = campaign
    target = c["target"]
    who = target.get("name") or f"{len(target.get('users', []))} users"
    rows = [
        ["id", c["campaign_id"]],
        ["状态 status", c["status"]],
        ["目标 target", f"{target['kind']}: {who}"],
        ["动作 action", json.dumps(c["action"], ensure_ascii=False)],
        ["计划 schedule", f"{c['schedule']['kind']} {c['schedule']['at']}"],
        ["对照 holdout", f"{c['holdout_share']:.0%}"],
        ["日期 dates", f"{c['starts_on'] or '—'} – {c['ends_on'] or '—'}"],
        ["预算 budget", f"{c['spent_yuan']} / {c['budget_yuan'] or '∞'} 元 yuan"],
        ["动作数 actions", f"{c['actions']} / {c['max_actions'] or '∞'}"],
        ["转化 conversion", f"{c['conversion_event']} within {c['window_days']} days"],
    ]
    console.print_table(f"活动 campaign {c['name']}", ["", ""], rows)


@cli.command("list")
def list_cmd(
    app: AppOption,
    status: Annotated[
        str | None, typer.Option("--status", help="draft active paused ended")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The app's campaigns, newest first."""
    from liucun.engage.campaigns import list_campaigns

    engine, found = _context(app)
    out = [c.as_json() for c in list_campaigns(engine, found.app_id, status)]
    if as_json:
        console.print_json(out)
        return
    rows = [
        [
            c["name"],
            c["campaign_id"],
            c["status"],
            c["target"]["kind"],
            c["actions"],
            c["spent_yuan"],
        ]
        for c in out
    ]
    console.print_table(
        "活动 campaigns",
        ["name", "id", "状态 status", "目标 target", "动作 actions", "花费 yuan"],
        rows,
    )


@cli.command("create")
def create(
    app: AppOption,
    flow: Annotated[
        str | None, typer.Option("--flow", help="A playbook flow (engage.campaigns.flows).")
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A JSON or YAML campaign spec file.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The campaign's name.")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Budget in yuan.")] = None,
    starts: Annotated[str | None, typer.Option("--starts", help="First day YYYY-MM-DD.")] = None,
    ends: Annotated[str | None, typer.Option("--ends", help="Last day YYYY-MM-DD.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a draft campaign from a playbook flow or a spec file."""
    import yaml

    from liucun.engage.campaigns import create_campaign, create_from_flow, parse_spec

    engine, found = _context(app)
    now = datetime.now(UTC)
    starts_on, ends_on = _date(starts, "--starts"), _date(ends, "--ends")
    if (flow is None) == (spec_file is None):
        console.fail("give --flow NAME or --spec FILE (one of them)", code=2)
    if flow is not None:
        overrides = {"name": name, "budget_yuan": budget}
        made = _guard(
            lambda: create_from_flow(engine, found, flow, now, starts_on, ends_on, **overrides)
        )
    else:
        assert spec_file is not None
        try:
            raw = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            console.fail(f"cannot read {spec_file}: {exc}", code=2)
        if not isinstance(raw, dict):
            console.fail(f"{spec_file}: a campaign spec is a mapping", code=2)
        raw.update({k: v for k, v in {"name": name, "budget_yuan": budget}.items() if v})
        made = _guard(
            lambda: create_campaign(engine, found, parse_spec(raw), now, starts_on, ends_on)
        )
    if as_json:
        console.print_json(made.as_json())
        return
    _show(made.as_json())


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        console.fail(f"{option} {text!r}: give a date as YYYY-MM-DD", code=2)


@cli.command("show")
def show(app: AppOption, campaign: CampaignArg, as_json: JsonOption = False) -> None:
    """A campaign's settings, status and budget used."""
    from liucun.engage.campaigns import find_campaign

    engine, found = _context(app)
    c = _guard(lambda: find_campaign(engine, found.app_id, campaign)).as_json()
    if as_json:
        console.print_json(c)
        return
    _show(c)


def _status_command(verb: str, zh: str) -> Callable[..., None]:
    def command(app: AppOption, campaign: CampaignArg, as_json: JsonOption = False) -> None:
        from liucun.engage.campaigns import change_status

        engine, found = _context(app)
        c = _guard(lambda: change_status(engine, found.app_id, campaign, verb, datetime.now(UTC)))
        if as_json:
            console.print_json(c.as_json())
            return
        console.out.print(f"{zh} {verb}: {c.name} → {c.status}")

    command.__doc__ = {
        "launch": "Launch a draft (or resume a paused) campaign.",
        "pause": "Pause an active campaign (it keeps its assignments).",
        "end": "End a campaign for good.",
    }[verb]
    return command


cli.command("launch")(_status_command("launch", "已启动"))
cli.command("pause")(_status_command("pause", "已暂停"))
cli.command("end")(_status_command("end", "已结束"))


@cli.command("dry-run")
def dry_run_cmd(
    app: AppOption, campaign: CampaignArg, day: DayOption = None, as_json: JsonOption = False
) -> None:
    """Reach, holdout, messages and cost of a campaign against a past day, writing nothing."""
    from liucun.engage.dry_run import dry_run

    on = _date(day, "--date")
    now = datetime.now(UTC)
    out = _with_events(
        app,
        lambda store, engine, found: dry_run(store, engine, found, campaign, now, on).as_json(),
        lambda server, app_id: server.post_json(
            f"/admin/v1/apps/{app_id}/campaigns/{campaign}/dry-run",
            {"date": str(on) if on else None},
        ),
    )
    if as_json:
        console.print_json(out)
        return
    rows = [[k, json.dumps(v, ensure_ascii=False, default=str)] for k, v in out.items()]
    console.print_table("试运行 dry run", ["", ""], rows)


@cli.command("run")
def run_cmd(
    app: AppOption,
    campaign: Annotated[
        str | None, typer.Argument(help="A campaign id or name (none: every campaign due).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run an active campaign now (re-running acts on nobody twice), or every campaign due."""
    from liucun.engage.runner import run_campaign, run_due_campaigns

    now = datetime.now(UTC)

    def local(store: Any, engine: Any, found: Any) -> Any:
        if campaign is None:
            return run_due_campaigns(store, engine, found, now)
        return run_campaign(store, engine, found, campaign, now).as_json()

    def remote(server: Any, app_id: str) -> Any:
        if campaign is None:
            console.fail("with a server running, name the campaign to run", code=2)
        return server.post_json(f"/admin/v1/apps/{app_id}/campaigns/{campaign}/run", {})

    out = _with_events(app, local, remote)
    if as_json or campaign is None:
        console.print_json(out)
        return
    rows = [[k, json.dumps(v, ensure_ascii=False, default=str)] for k, v in out.items()]
    console.print_table("运行 run", ["", ""], rows)


@cli.command("results")
def results_cmd(app: AppOption, campaign: CampaignArg, as_json: JsonOption = False) -> None:
    """Treatment against holdout: conversion, revisits, spend, lift with CIs, SRM check."""
    from liucun.engage.results import campaign_results

    now = datetime.now(UTC)
    out = _with_events(
        app,
        lambda store, engine, found: campaign_results(
            store, engine, found, campaign, now
        ).as_json(),
        lambda server, app_id: server.get(f"/admin/v1/apps/{app_id}/campaigns/{campaign}/results"),
    )
    if as_json:
        console.print_json(out)
        return
    rows = []
    for metric, m in out["metrics"].items():
        lift = m["lift"]
        ci = lift["relative_ci"]
        rows.append(
            [
                metric,
                f"{m['treatment']['mean']:.4g} (n={m['treatment']['n']})",
                f"{m['holdout']['mean']:.4g} (n={m['holdout']['n']})",
                "—" if lift["relative"] is None else f"{lift['relative']:+.1%}",
                "—" if ci is None else f"[{ci[0]:+.1%}, {ci[1]:+.1%}]",
                "—" if lift["p_value"] is None else f"{lift['p_value']:.3g}",
            ]
        )
    console.print_table(
        f"结果 results {out['name']}",
        ["指标 metric", "实验组 treatment", "对照组 holdout", "提升 lift", "CI", "p"],
        rows,
    )
    srm = out["srm"]
    flag = "[bold red]SRM 分组比例异常[/]" if srm["mismatch"] else "SRM ok 分组比例正常"
    console.out.print(f"{flag} (p = {srm['p_value']:.3g}, {srm['observed']})")
