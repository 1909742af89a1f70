"""CLI work on this machine's stores, or through the local server when it holds the event store."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from liucun import console
from liucun.analytics.metrics import compute
from liucun.analytics.params import AnalyticsError, MetricParams
from liucun.analytics.saved_funnels import with_saved_funnel
from liucun.config import Settings
from liucun.events.batch import Rejected
from liucun.events.export import write_export
from liucun.events.importers import detect_format
from liucun.events.importing import ImportReport, Sender, import_file, store_sender
from liucun.events.ingest import IngestResult
from liucun.events.users import UsersReport, check_users, read_user_chunks
from liucun.server_file import (
    ServerCard,
    ServerClient,
    ServerRefusedError,
    read_card,
    remove_card,
    write_card,
)
from liucun.sim import SimConfig, SimSummary, write_simulation
from liucun.state.apps import App
from liucun.state.db import create_state_engine, open_state
from liucun.state.locks import app_write_lock
from liucun.warehouse.migrate import MigrationCountError, MigrationReport, migrate_events
from liucun.warehouse.store import (
    CLICKHOUSE_SCHEMES,
    EventStore,
    StoreBusyError,
    open_event_store,
)
from liucun.warehouse.writer import GroupCommitWriter


def open_events(s: Settings, url: str | None = None) -> EventStore:
    """The event store at `url` (default: the configured one), writing under the lock that
    the servers sharing this state store take (scale-out: several servers, one ClickHouse)."""
    url = url or s.event_store_url
    shared = url.split(":", 1)[0] in CLICKHOUSE_SCHEMES
    state = create_state_engine(s.state_store_url) if shared else None
    return open_event_store(url, write_lock=app_write_lock(state) if state else None)


def open_store_or_server(s: Settings) -> EventStore | ServerClient:
    """The event store, or a client of the server that holds it; a clear error otherwise."""
    try:
        return open_events(s)
    except StoreBusyError as exc:
        card = read_card(s.data_dir)
        if card is None:
            console.fail(f"{exc}; no live server card in {s.data_dir}")
        console.err.print(f"[dim]event store held by the server at {card.url}; asking it[/]")
        return ServerClient(card)
    except Exception as exc:  # an unreachable ClickHouse, a bad URL: say which setting
        console.fail(
            f"cannot open the event store {s.event_store_url}: {exc}\n"
            "check LIUCUN_EVENT_STORE, and that its server answers"
        )


def event_count(s: Settings, app: App) -> int:
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        return int(target.get(f"/admin/v1/apps/{app.app_id}/events/count")["events"])
    try:
        return target.count(app.app_id)
    finally:
        target.close()


def metric(s: Settings, app: App, kind: str, params: MetricParams) -> Any:
    """Metric `kind` of `app` as JSON-ready data, computed here or by the running server."""
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        query = params.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        try:
            return target.get(f"/admin/v1/apps/{app.app_id}/metrics/{kind}", query)
        except ServerRefusedError as exc:
            raise AnalyticsError(str(exc)) from None
    state = open_state(s.state_store_url)
    try:
        return compute(target, app, kind, with_saved_funnel(state, app.app_id, params), state)
    finally:
        state.dispose()
        target.close()


def _download(client: ServerClient, app: App, path: Path, fmt: str) -> int:
    url = f"/admin/v1/apps/{app.app_id}/events/export?format={fmt}"
    response = client.stream(url)
    try:
        response.raise_for_status()
        with path.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    finally:
        response.close()
    return int(response.headers.get("x-event-count", "0"))


def export_events(s: Settings, app: App, path: Path, fmt: str) -> int:
    """Write every stored event of `app` once to `path`; returns the count."""
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        return _download(target, app, path, fmt)
    try:
        with console.progress(f"export {app.name}", target.count(app.app_id)) as bar:
            task = bar.task_ids[0]

            def batches() -> Iterator[pa.Table]:
                for table in target.export_batches(app.app_id):
                    bar.advance(task, table.num_rows)
                    yield table

            return write_export(batches(), str(path), fmt)
    finally:
        target.close()


def _server_sender(client: ServerClient, app: App) -> Sender:
    def send(rows: Sequence[Any]) -> IngestResult:
        data = client.post_batch(app.write_key, list(rows))
        if not isinstance(data, dict) or "rejected" not in data:
            raise ValueError(f"the server refused the batch: {data}")
        rejected = [Rejected(r["index"], r["reason"]) for r in data["rejected"]]
        return IngestResult(data["received"], data["accepted"], data["new"], rejected)

    return send


def import_events(s: Settings, app: App, path: Path, fmt: str | None) -> ImportReport:
    fmt = fmt or detect_format(path)
    target = open_store_or_server(s)
    send = (
        _server_sender(target, app)
        if isinstance(target, ServerClient)
        else store_sender(target, app)
    )
    try:
        with console.progress(f"import {path.name} 导入", None) as bar:
            task = bar.task_ids[0]
            return import_file(path, send, fmt, lambda rows: bar.update(task, completed=rows))
    finally:
        if not isinstance(target, ServerClient):
            target.close()


def import_users(s: Settings, app: App, path: Path) -> UsersReport:
    """Record the users' creation times in `path` for `app` (here or through the server)."""
    report = UsersReport(str(path))
    target = open_store_or_server(s)
    try:
        for chunk in read_user_chunks(path):
            lines = [line for line, _ in chunk]
            rows = [row for _, row in chunk]
            report.rows += len(rows)
            if isinstance(target, ServerClient):
                answer = target.post_json(f"/admin/v1/apps/{app.app_id}/users", {"users": rows})
                accepted = int(answer["accepted"])
                rejected = [(r["index"], r["reason"]) for r in answer["rejected"]]
            else:
                table, rejected = check_users(rows)
                target.add_users(app.app_id, table)
                accepted = table.num_rows
            report.accepted += accepted
            report.rejected += [(lines[i], why) for i, why in rejected]
    finally:
        if not isinstance(target, ServerClient):
            target.close()
    return report


def run_server(s: Settings, host: str, port: int) -> None:
    """Serve HTTP until stopped, leaving a card in the data directory for the local CLI."""
    running = read_card(s.data_dir)
    if running is not None:
        console.fail(
            f"a liucun server (pid {running.pid}) already serves {s.data_dir} at {running.url}"
        )
    state = open_state(s.state_store_url)
    try:
        store = open_event_store(s.event_store_url, write_lock=app_write_lock(state))
    except StoreBusyError as exc:
        console.fail(str(exc))
    except Exception as exc:  # an unreachable ClickHouse, a bad URL: say which setting
        console.fail(
            f"cannot open the event store {s.event_store_url}: {exc}\n"
            "check LIUCUN_EVENT_STORE, and that its server answers"
        )
    console.err.print(
        f"dashboard 运营看板: http://{host}:{port}/dashboard/ (log in with an admin token)"
    )
    serve_with_store(s, host, port, store, state)


def serve_with_store(
    s: Settings, host: str, port: int, store: EventStore, state: sa.Engine
) -> None:
    """Serve HTTP on an event store this process has opened, until stopped."""
    import uvicorn

    from liucun.api.app import create_app
    from liucun.api.runtime import Runtime
    from liucun.api.workers import stop_pools

    runtime = Runtime(s, state, store, GroupCommitWriter(store))
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    card = ServerCard(os.getpid(), f"http://{shown_host}:{port}", runtime.control_token)
    write_card(s.data_dir, card)

    def shut_down() -> None:
        remove_card(s.data_dir, card.pid)
        runtime.close()
        stop_pools()

    app = create_app(s, runtime, on_shutdown=shut_down)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def run_simulation(
    s: Settings,
    out_dir: Path,
    users: int,
    days: int,
    seed: int,
    industry: str,
    app: App | None,
) -> SimSummary:
    """Write a simulation to `out_dir`; with `app`, also store its events for that app."""
    config = SimConfig(
        users=users,
        days=days,
        seed=seed,
        industry=industry,
        timezone=(app.timezone if app else s.timezone),
    )
    with console.progress("simulate 模拟 (days)", days) as bar:
        task = bar.task_ids[0]
        summary = write_simulation(
            config, out_dir, lambda done, _total: bar.update(task, completed=done)
        )
    if app is not None:
        import_events(s, app, summary.events_path, "parquet")
    return summary


def migrate_app_events(s: Settings, app: App, to_url: str) -> MigrationReport:
    """Copy `app`'s events from the configured event store to the store at `to_url`, with a
    progress bar and a count check at the end."""
    if to_url == s.event_store_url:
        console.fail(f"the target {to_url} is the configured event store itself")
    try:
        source = open_events(s)
    except StoreBusyError as exc:
        console.fail(f"{exc}; stop it while the events move, then serve from the new store")
    try:
        try:
            target = open_events(s, to_url)
        except Exception as exc:  # unreachable server, bad URL: say which and what to check
            console.fail(
                f"cannot open the target event store {to_url}: {exc}\n"
                "check the URL, and that the ClickHouse server answers at that address"
            )
        try:
            with console.progress(f"migrate {app.name} 迁移", source.count(app.app_id)) as bar:
                task = bar.task_ids[0]
                return migrate_events(
                    source, target, app.app_id, app.timezone, lambda n: bar.advance(task, n)
                )
        except MigrationCountError as exc:
            console.fail(str(exc))
        finally:
            target.close()
    finally:
        source.close()


def monthly_report_files(
    s: Settings, app: App, month: str, lang: str
) -> tuple[dict[str, Any], str]:
    """(the report's JSON, its HTML in `lang`), made here or by the server holding the event
    store. ReportError when the month cannot be reported."""
    from liucun.reports.model import ReportError
    from liucun.reports.monthly import monthly_report, parse_month
    from liucun.reports.render import render_html

    first = parse_month(month)
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        path = f"/admin/v1/apps/{app.app_id}/reports/monthly"
        try:
            data = target.get(path, {"month": month})
        except ServerRefusedError as exc:
            raise ReportError(str(exc)) from None
        response = target.stream(f"{path}?month={month}&format=html&lang={lang}")
        try:
            response.read()
            return data, response.text
        finally:
            response.close()
    state = open_state(s.state_store_url)
    try:
        report = monthly_report(target, state, app, first)
        return report.as_json(), render_html(report, lang)
    finally:
        state.dispose()
        target.close()
