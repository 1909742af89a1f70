"""`liucun alerts …`: check the early-warning rules, list alerts, deliver them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine
from liucun.server_file import ServerClient, ServerRefusedError

cli = typer.Typer(help="Early warning 预警: alerts and their delivery.", no_args_is_help=True)

SEVERITY = {"critical": "严重 critical", "warning": "警告 warning", "info": "提示 info"}
DELIVERY = {
    "pending": "待送达 pending",
    "delivered": "已送达 delivered",
    "failed": "被拒 failed",
    "off": "无 webhook off",
}
HEADERS = ["编号 id", "级别 severity", "预警 alert", "周期 period", "建议 action"]


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        console.fail(f"--date {text!r} is not a date: write it as YYYY-MM-DD", code=2)


def _row(a: dict[str, Any]) -> list[Any]:
    # the English action is in --json; the title carries the person and the numbers
    return [
        a["id"],
        SEVERITY.get(a["severity"], a["severity"]),
        f"{a['title']['zh']}\n{a['title']['en']}",
        a["period"],
        a["action"]["zh"],
    ]


def _print_alerts(title: str, alerts: list[dict[str, Any]], check: bool = False) -> None:
    if not alerts:
        console.out.print(f"{title}: 无预警 no alerts")
        return
    headers = [*HEADERS, "送达 delivery", "新 new" if check else "确认 acked"]
    rows = []
    for a in alerts:
        last = ("是 yes" if a["new"] else "否 no") if check else (a["acknowledged_at"] or "—")
        rows.append([*_row(a), DELIVERY.get(a["delivery"], a["delivery"]), last])
    console.print_table(title, headers, rows)


@cli.command("check")
def check(
    app: AppOption,
    day: Annotated[
        str | None,
        typer.Option("--date", help="App-local day to check (YYYY-MM-DD); default: latest data."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the alert rules, store new alerts and deliver them to the webhook."""
    from liucun.analytics.activity_source import latest_day
    from liucun.analytics.metrics import app_today
    from liucun.lifecycle.alerts import day_problem
    from liucun.lifecycle.webhook import check_and_deliver, check_json
    from liucun.local import open_store_or_server
    from liucun.playbook.store import playbook_in_force

    s = settings()
    found = resolve_app(s, app)
    as_of = _day(day)
    today = app_today(found)
    problem = None if as_of is None else day_problem(as_of, today)
    if problem is not None:
        console.fail(f"--{problem}", code=2)
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        path = f"/admin/v1/apps/{found.app_id}/alerts/check"
        try:
            data = target.post_json(path + (f"?date={as_of}" if as_of else ""), {})
        except ServerRefusedError as exc:
            console.fail(str(exc), code=2)
    else:
        state = state_engine(s)
        try:
            as_of = as_of or latest_day(target, found.app_id) or today
            playbook = playbook_in_force(state, found.app_id).playbook
            data = check_json(check_and_deliver(target, state, found, as_of, playbook))
        finally:
            target.close()
            state.dispose()
    if as_json:
        console.print_json(data)
        return
    _print_alerts(f"预警 alerts · {found.name} · {data['as_of']}", data["alerts"], check=True)
    d = data["delivery"]
    console.out.print(
        f"新预警 new: {sum(a['new'] for a in data['alerts'])} · 已送达 delivered: "
        f"{d['delivered']} · 被拒 failed: {d['failed']} · 待送达 pending: {d['pending']}"
    )


@cli.command("list")
def list_(
    app: AppOption,
    everything: Annotated[
        bool, typer.Option("--all", help="Acknowledged alerts too, not only open ones.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the app's alerts, newest first: open ones, or all."""
    from liucun.lifecycle.alert_store import alert_json, list_alerts

    s = settings()
    found = resolve_app(s, app)
    state = state_engine(s)
    try:
        rows = [
            alert_json(a) for a in list_alerts(state, found.app_id, "all" if everything else "open")
        ]
    finally:
        state.dispose()
    if as_json:
        console.print_json(rows)
        return
    which = "全部 all" if everything else "未确认 open"
    _print_alerts(f"预警 alerts · {found.name} · {which}", rows)


@cli.command("ack")
def ack(
    alert_id: Annotated[
        int, typer.Argument(metavar="ID", help="The alert's id.", min=1, max=2**31 - 1)
    ],
    app: AppOption,
    as_json: JsonOption = False,
) -> None:
    """Acknowledge an alert: it leaves the open list."""
    from liucun.lifecycle.alert_store import AlertNotFoundError, acknowledge, alert_json

    s = settings()
    found = resolve_app(s, app)
    state = state_engine(s)
    try:
        alert = alert_json(acknowledge(state, found.app_id, alert_id))
    except AlertNotFoundError as exc:
        console.fail(str(exc))
    finally:
        state.dispose()
    if as_json:
        console.print_json(alert)
        return
    console.out.print(f"已确认 acknowledged: {alert['id']} {alert['title']['zh']}")


@cli.command("deliver")
def deliver(app: AppOption, as_json: JsonOption = False) -> None:
    """Deliver the alerts still waiting for the webhook (earlier runs could not reach it)."""
    from liucun.lifecycle.webhook import deliver_pending
    from liucun.playbook.store import playbook_in_force

    s = settings()
    found = resolve_app(s, app)
    state = state_engine(s)
    try:
        webhook = playbook_in_force(state, found.app_id).playbook.alerts.webhook
        if webhook.url is None:
            console.fail(
                "no webhook: set alerts.webhook.url in the app's playbook "
                "(`liucun playbook apply FILE --app APP`)"
            )
        report = deliver_pending(state, found, webhook)
    finally:
        state.dispose()
    data = {"delivered": report.delivered, "failed": report.failed, "pending": report.pending}
    if as_json:
        console.print_json(data)
        return
    console.out.print(
        f"已送达 delivered: {report.delivered} · 被拒 failed: {report.failed} · "
        f"待送达 pending: {report.pending}"
    )
