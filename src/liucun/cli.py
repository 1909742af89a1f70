"""The `liucun` command line. Each command parses its options and calls a capability."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from liucun import console
from liucun.commands import alerts as alerts_commands
from liucun.commands import bgnbd as bgnbd_commands
from liucun.commands import campaigns as campaigns_commands
from liucun.commands import churn as churn_commands
from liucun.commands import lifecycle as lifecycle_commands
from liucun.commands import loyalty as loyalty_commands
from liucun.commands import messages as messages_commands
from liucun.commands import playbook as playbook_commands
from liucun.commands import schedule as schedule_commands
from liucun.commands import segments as segments_commands
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine
from liucun.commands.report import report_command
from liucun.config import EVENT_STORE_SCHEMES, Settings
from liucun.state.apps import App, AppError, create_app, list_apps

app = typer.Typer(
    help="留存 liucun — retention and growth engine for mini-programs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
apps_cli = typer.Typer(help="Apps (tenants) and their keys.", no_args_is_help=True)
events_cli = typer.Typer(help="Stored events: count and export.", no_args_is_help=True)
funnels_cli = typer.Typer(help="Saved funnels (e.g. the key path).", no_args_is_help=True)
app.add_typer(apps_cli, name="apps")
app.add_typer(events_cli, name="events")
app.add_typer(funnels_cli, name="funnels")
app.add_typer(playbook_commands.cli, name="playbook")
app.add_typer(churn_commands.cli, name="churn")
app.add_typer(alerts_commands.cli, name="alerts")
app.add_typer(loyalty_commands.cli, name="loyalty")
app.add_typer(campaigns_commands.cli, name="campaigns")
app.add_typer(messages_commands.cli, name="messages")
app.add_typer(messages_commands.channels_cli, name="channels")
app.add_typer(messages_commands.consent_cli, name="consent")
app.add_typer(segments_commands.cli, name="segments")
app.add_typer(segments_commands.tags_cli, name="tags")
app.add_typer(segments_commands.profiles_cli, name="profiles")
app.command("report")(report_command)
lifecycle_commands.register(app)
schedule_commands.register(app)
bgnbd_commands.register(churn_commands.cli)


@apps_cli.command("create")
def apps_create(
    name: str,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone; LIUCUN_TIMEZONE by default.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an app and print its public write key and its admin token (shown once)."""
    s = settings()
    try:
        creds = create_app(state_engine(s), name, tz or s.timezone)
    except (AppError, ValueError) as exc:
        console.fail(str(exc))
    if as_json:
        console.print_json(asdict(creds))
        return
    console.print_table(
        f"app {name} created 应用已创建",
        ["field", "value"],
        [(k, v) for k, v in asdict(creds).items()],
    )
    console.out.print("[yellow]Keep the admin token: it is not shown again. 请保存管理令牌。[/]")


@apps_cli.command("list")
def apps_list(as_json: JsonOption = False) -> None:
    """List the apps of this installation."""
    apps = list_apps(state_engine(settings()))
    if as_json:
        console.print_json([asdict(a) for a in apps])
        return
    console.print_table(
        "apps 应用",
        ["app_id", "name", "timezone", "write_key"],
        [(a.app_id, a.name, a.timezone, a.write_key) for a in apps],
    )


@events_cli.command("count")
def events_count(app_ref: AppOption, as_json: JsonOption = False) -> None:
    """How many events of the app are stored."""
    from liucun.local import event_count

    s = settings()
    found = resolve_app(s, app_ref)
    count = event_count(s, found)
    if as_json:
        console.print_json({"app_id": found.app_id, "name": found.name, "events": count})
    else:
        console.print_table("events 事件", ["app", "events"], [(found.name, f"{count:,}")])


@events_cli.command("export")
def events_export(
    app_ref: AppOption,
    file: Path,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or parquet (by suffix).")
    ] = None,
) -> None:
    """Write every stored event of the app once to FILE (JSON lines or Parquet)."""
    from liucun.local import export_events

    s = settings()
    found = resolve_app(s, app_ref)
    fmt = fmt or ("parquet" if file.suffix.lower() in (".parquet", ".pq") else "jsonl")
    if fmt not in ("jsonl", "parquet"):
        console.fail(f"unknown export format {fmt!r}: use jsonl or parquet")
    count = export_events(s, found, file, fmt)
    console.out.print(f"wrote {count:,} events to {file} 已导出")


@app.command("import")
def import_events(
    app_ref: AppOption,
    file: Annotated[Path | None, typer.Argument(help="Events file.")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv, parquet or posthog (by suffix).")
    ] = None,
    users: Annotated[
        Path | None,
        typer.Option("--users", help="Instead: users' creation times (user_id, created_at)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Load events from FILE with the same validation and dedup as HTTP ingest, or users'
    creation times with --users."""
    from liucun.local import import_events as run_import

    if (file is None) == (users is None):
        console.fail("give an events FILE or --users FILE (one of the two)", code=2)
    source = file or users
    assert source is not None
    if not source.is_file():
        console.fail(f"{source} does not exist or is not a file")
    s = settings()
    found = resolve_app(s, app_ref)
    if users is not None:
        import_users(s, found, users, as_json)
        return
    assert file is not None
    try:
        report = run_import(s, found, file, fmt)
    except ValueError as exc:
        console.fail(str(exc))
    if as_json:
        console.print_json(report)
        return
    console.print_table(
        f"import {file.name} 导入",
        ["rows", "accepted", "new", "duplicates", "rejected"],
        [(report.rows, report.accepted, report.new, report.duplicates, len(report.rejected))],
    )
    show_rejected(report.rejected)


def show_rejected(rejected: list[tuple[int, str]]) -> None:
    """The first rejected rows of an import, by line, with the reason."""
    if rejected:
        console.print_table(
            "rejected rows 被拒绝的行 (first 20)", ["line", "reason"], rejected[:20]
        )


def import_users(s: Settings, found: App, path: Path, as_json: bool) -> None:
    from liucun.local import import_users as run_import

    try:
        report = run_import(s, found, path)
    except ValueError as exc:
        console.fail(str(exc))
    if as_json:
        console.print_json(report)
        return
    console.print_table(
        f"import users {path.name} 导入用户",
        ["rows", "accepted", "rejected"],
        [(report.rows, report.accepted, len(report.rejected))],
    )
    show_rejected(report.rejected)


Opt = typer.Option


@funnels_cli.command("save")
def funnels_save(
    name: str,
    app_ref: AppOption,
    steps: Annotated[str, Opt(help="Event names, comma-separated.")],
    window: Annotated[str, Opt(help="Conversion window: 30m, 2h, 1d.")] = "14d",
    order: Annotated[str, Opt(help="ordered, strict or any.")] = "ordered",
    breakdown: Annotated[str | None, Opt(help="platform, properties.KEY, profile.NAME, …")] = None,
) -> None:
    """Save a funnel under NAME (replacing one of that name); `metrics funnel --saved NAME`."""
    from liucun.analytics.params import AnalyticsError, parse_params
    from liucun.analytics.saved_funnels import save_funnel

    s = settings()
    found = resolve_app(s, app_ref)
    options = {"steps": steps, "window": window, "order": order, "breakdown": breakdown}
    try:
        saved = save_funnel(state_engine(s), found.app_id, name, parse_params(options))
    except AnalyticsError as exc:
        console.fail(str(exc), code=2)
    console.out.print(f"saved funnel {saved.name}: {saved.steps} within {saved.window} 已保存")


@funnels_cli.command("list")
def funnels_list(app_ref: AppOption, as_json: JsonOption = False) -> None:
    """The app's saved funnels."""
    from liucun.analytics.saved_funnels import list_funnels

    s = settings()
    funnels = list_funnels(state_engine(s), resolve_app(s, app_ref).app_id)
    if as_json:
        console.print_json([asdict(f) for f in funnels])
        return
    console.print_table(
        "saved funnels 已保存漏斗",
        ["name", "steps", "window", "order", "breakdown"],
        [(f.name, f.steps, f.window, f.order.value, f.breakdown or "") for f in funnels],
    )


@app.command("metrics")
def metrics_command(
    kind: Annotated[
        str,
        typer.Argument(
            help="active, mau-report, retention, day-retention, lifecycle, stickiness, funnel, "
            "exits, paths, features, dwell, heatmap or performance."
        ),
    ],
    app_ref: AppOption,
    date_from: Annotated[str | None, Opt("--from", help="First local date, YYYY-MM-DD.")] = None,
    date_to: Annotated[str | None, Opt("--to", help="Last local date (default: latest).")] = None,
    event: Annotated[str | None, Opt(help="Activity event: visit (default), any, a name.")] = None,
    week_start: Annotated[str | None, Opt(help="monday (default) or sunday.")] = None,
    period: Annotated[str | None, Opt(help="day, week or month.")] = None,
    intervals: Annotated[int | None, Opt(help="Retention intervals, interval 0 included.")] = None,
    retention_type: Annotated[str | None, Opt("--type", help="first_time or recurring.")] = None,
    cumulative: Annotated[bool, Opt(help="Retention/stickiness: this interval or later.")] = False,
    start_event: Annotated[str | None, Opt(help="Retention start event.")] = None,
    return_event: Annotated[str | None, Opt(help="Retention return event.")] = None,
    min_events: Annotated[int | None, Opt(help="Stickiness: events that make a period.")] = None,
    steps: Annotated[str | None, Opt(help="Funnel steps: event names, comma-separated.")] = None,
    window: Annotated[str | None, Opt(help="Funnel window: 30m, 2h, 1d (default 14d).")] = None,
    order: Annotated[str | None, Opt(help="Funnel order: ordered, strict or any.")] = None,
    breakdown: Annotated[
        str | None,
        Opt(help="Funnel/retention breakdown: platform, scene, properties.KEY, profile.NAME."),
    ] = None,
    saved: Annotated[str | None, Opt(help="Funnel: a saved funnel's name.")] = None,
    page: Annotated[str | None, Opt(help="Paths: this page's links; heatmap: its taps.")] = None,
    limit: Annotated[int | None, Opt(help="Most rows: pages, links, features.")] = None,
    grid: Annotated[str | None, Opt(help="Heatmap grid, columns x rows (10x20).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Engagement metrics of an app over a range of its local dates (docs/metrics.md)."""
    from liucun.analytics.params import AnalyticsError, parse_params
    from liucun.analytics.tables import metric_tables
    from liucun.local import metric

    s = settings()
    found = resolve_app(s, app_ref)
    options = {
        "from": date_from,
        "to": date_to,
        "event": event,
        "week_start": week_start,
        "period": period,
        "intervals": intervals,
        "type": retention_type,
        "cumulative": cumulative or None,
        "start_event": start_event,
        "return_event": return_event,
        "min_events": min_events,
        "steps": steps,
        "window": window,
        "order": order,
        "breakdown": breakdown,
        "saved": saved,
        "page": page,
        "limit": limit,
        "grid": grid,
    }
    try:
        data = metric(s, found, kind, parse_params(options))
    except AnalyticsError as exc:
        console.fail(str(exc), code=2)
    if as_json:
        console.print_json(data)
        return
    for table in metric_tables(kind, data):
        console.print_table(table.title, table.headers, table.rows)


@app.command("migrate-events")
def migrate_events_command(
    app_ref: AppOption,
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Target event store URL, e.g. clickhouse://user:pw@host:8123/liucun."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Copy the app's events from the configured event store to another (DuckDB → ClickHouse).

    Safe to rerun: the target stores each event once. Ends with a count check.
    """
    from liucun.local import migrate_app_events

    s = settings()
    found = resolve_app(s, app_ref)
    if to.split(":", 1)[0] not in EVENT_STORE_SCHEMES:
        console.fail(
            f"--to {to!r} is not an event store URL: use clickhouse://host:8123/database "
            f"(schemes: {', '.join(EVENT_STORE_SCHEMES)})",
            code=2,
        )
    report = migrate_app_events(s, found, to)
    if as_json:
        console.print_json(report)
        return
    console.out.print(
        f"copied {report.source_events:,} events of {found.name} to {to} 迁移完成: "
        f"{report.new_in_target:,} new there, {report.target_events:,} in all (counts match); "
        f"{report.users:,} users' creation times.\n"
        f"next: serve from it with LIUCUN_EVENT_STORE={to}"
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP server: ingest, client and admin APIs."""
    from liucun.local import run_server

    run_server(settings(), host, port)


@app.command()
def simulate(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for events and ground truth.")
    ] = Path("sim-out"),
    users: Annotated[int, typer.Option(min=1)] = 20_000,
    days: Annotated[int, typer.Option(min=1)] = 90,
    seed: int = 42,
    industry: str = "ecommerce",
    app_ref: Annotated[str | None, typer.Option("--app", help="Also ingest into this app.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate a seeded population's events (Parquet) and its ground truth."""
    from liucun.local import run_simulation

    s = settings()
    target = resolve_app(s, app_ref) if app_ref else None
    try:
        summary = run_simulation(s, out_dir, users, days, seed, industry, target)
    except ValueError as exc:
        console.fail(str(exc))
    if as_json:
        console.print_json(summary)
    else:
        console.print_table("simulation 模拟", ["field", "value"], list(asdict(summary).items()))


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1)] = 20_000,
    days: Annotated[int, typer.Option(min=1)] = 90,
    host: str = "127.0.0.1",
    port: int = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")
    ] = True,
) -> None:
    """Create a demo app, simulate and ingest its events, show headline figures, then serve."""
    from liucun.demo import run_demo

    run_demo(settings(), users, days, host, port, serve_after)


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()
