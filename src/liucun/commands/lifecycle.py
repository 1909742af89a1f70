"""`liucun lifecycle` and `liucun winback`: users' lifecycle labels and win-back lists."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine
from liucun.lifecycle.label_names import LABEL_NAMES, LABELS
from liucun.server_file import ServerClient, ServerRefusedError

DateOpt = Annotated[
    str | None, typer.Option("--date", help="App-local date (default: the latest with data).")
]


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        console.fail(f"{name} must be a date like 2026-10-31, got {value!r}", code=2)


def _present(params: dict[str, Any]) -> dict[str, Any]:
    """The query parameters that are set, as text (dates in ISO form)."""
    return {k: v if isinstance(v, int) else str(v) for k, v in params.items() if v}


def _label(
    app_ref: str, first: date | None, last: date | None, relabel: bool
) -> tuple[Any, list[dict[str, Any]]]:
    """Label the days (here, or through the server holding the event store); their counts."""
    from liucun.lifecycle.daily import LifecycleError, data_day, plan_labels, run_labels
    from liucun.local import open_store_or_server

    s = settings()
    app = resolve_app(s, app_ref)
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        params = {"from": first, "to": last, "relabel": "true" if relabel else None}
        try:
            out = target.post(f"/admin/v1/apps/{app.app_id}/lifecycle/label", _present(params))
        except ServerRefusedError as exc:
            console.fail(str(exc), code=2)
        return app, out["days"]
    engine = state_engine(s)
    try:
        end = last or first or data_day(target, app)
        try:
            plan = plan_labels(target, engine, app, first or end, end, relabel)
        except LifecycleError as exc:
            console.fail(str(exc), code=2)
        with console.progress(
            f"lifecycle labels 生命周期标签 {app.name}", plan.days_to_compute
        ) as bar:
            task = bar.task_ids[0]
            days = run_labels(target, engine, app, plan, lambda _d: bar.advance(task))
    finally:
        target.close()
    # the same fields as the API's answer
    return app, [
        {"day": d.day.isoformat(), "playbook_revision": d.playbook_revision, "counts": d.counts}
        for d in days
    ]


def lifecycle_command(
    app_ref: AppOption,
    day: DateOpt = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First app-local date.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last app-local date.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Show this person's label history.")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="List the persons with this label.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    relabel: Annotated[
        bool, typer.Option("--relabel", help="Recompute labelled days (after a playbook change).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Label every user new / active / resurrected / silent / churned as of a day (the daily
    job: missing days are labelled first) and show the counts, a user's history or a list."""
    if day is not None and (date_from or date_to):
        console.fail("give --date, or --from/--to, not both", code=2)
    if label is not None and label not in LABELS:
        console.fail(f"unknown label {label!r}; labels: {', '.join(LABELS)}", code=2)
    first = _date(day or date_from, "--from" if date_from else "--date")
    last = _date(day or date_to, "--to" if date_to else "--date")
    app, days = _label(app_ref, first, last, relabel)
    if user is not None:
        _show_user(app, user, as_json)
    elif label is not None:
        _show_label(app, days[-1]["day"], label, limit, as_json)
    elif as_json:
        console.print_json({"app_id": app.app_id, "days": days})
    else:
        console.print_table(
            f"lifecycle labels 生命周期标签 · {app.name}",
            [
                "day 日期",
                "新 new",
                "活跃 active",
                "回流 back",
                "沉默 silent",
                "流失 churned",
                "rev",
            ],
            [[d["day"], *[d["counts"][x] for x in LABELS], d["playbook_revision"]] for d in days],
        )


def _show_user(app: Any, person: str, as_json: bool) -> None:
    from liucun.lifecycle.label_history import person_history

    history = person_history(state_engine(settings()), app.app_id, person)
    if not history:
        console.fail(f"person {person!r} has no lifecycle label in app {app.name}")
    rows = [{**asdict(t), "day": t.day.isoformat()} for t in history]
    if as_json:
        console.print_json({"person_id": person, "history": rows})
        return
    console.print_table(
        f"{person} · label history 标签历史",
        ["from 自", "label 标签", "previous 之前", "signals 信号", "playbook"],
        [
            [
                r["day"],
                LABEL_NAMES[r["label"]],
                r["previous"] or "–",
                ",".join(r["signals"]) or "–",
                r["playbook_revision"],
            ]
            for r in rows
        ],
    )


def _show_label(app: Any, day: str, label: str, limit: int, as_json: bool) -> None:
    from liucun.lifecycle.label_history import labels_on

    rows = labels_on(state_engine(settings()), app.app_id, date.fromisoformat(day), (label,))
    shown = [{**asdict(t), "day": t.day.isoformat()} for t in rows[:limit]]
    if as_json:
        console.print_json({"day": day, "label": label, "total": len(rows), "persons": shown})
        return
    console.print_table(
        f"{LABEL_NAMES[label]} on {day}: {len(rows):,} (showing {len(shown)})",
        ["person 用户", "since 自", "signals 信号"],
        [[r["person_id"], r["day"], ",".join(r["signals"]) or "–"] for r in shown],
    )


def winback_command(
    app_ref: AppOption,
    day: DateOpt = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the whole list to this CSV file.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 1_000,
    as_json: JsonOption = False,
) -> None:
    """The win-back list: silent and churned users by value (RFM), grouped by their main
    reason, each with the playbook's offer."""
    from liucun.lifecycle.daily import LifecycleError
    from liucun.lifecycle.winback import winback_csv, winback_list
    from liucun.local import open_store_or_server

    s = settings()
    app = resolve_app(s, app_ref)
    as_of = _date(day, "--date")
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        params = {"date": as_of, "limit": limit}
        try:
            entries = target.get(f"/admin/v1/apps/{app.app_id}/winback", _present(params))
        except ServerRefusedError as exc:
            console.fail(str(exc), code=2)
    else:
        try:
            found = winback_list(target, state_engine(s), app, as_of, limit)
        except LifecycleError as exc:
            console.fail(str(exc), code=2)
        finally:
            target.close()
        if csv_file is not None:
            csv_file.write_text(winback_csv(found), encoding="utf-8")
        entries = [e.as_json() for e in found]
    if csv_file is not None and isinstance(target, ServerClient):
        import csv

        with csv_file.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(entries[0]) if entries else ["person_id"])
            writer.writeheader()
            writer.writerows(entries)
    if as_json:
        console.print_json(entries)
        return
    _print_winback(entries, csv_file)


def _print_winback(entries: list[dict[str, Any]], csv_file: Path | None) -> None:
    groups: dict[str, int] = {}
    for e in entries:
        groups[e["reason_zh"] + " / " + e["reason_en"]] = (
            groups.get(e["reason_zh"] + " / " + e["reason_en"], 0) + 1
        )
    console.print_table(
        "win-back groups 召回分组",
        ["reason 原因", "users 用户"],
        sorted(groups.items(), key=lambda g: -g[1]),
    )
    console.print_table(
        f"win-back list 召回名单 (top 20 of {len(entries):,})",
        [
            "person 用户",
            "label 标签",
            "inactive 未访问天数",
            "orders 订单",
            "amount 金额",
            "RFM",
            "offer 权益",
        ],
        [
            [
                e["person_id"],
                LABEL_NAMES[e["label"]],
                e["days_inactive"] if e["days_inactive"] is not None else "–",
                e["orders"],
                e["amount"],
                f"{e['r']}{e['f']}{e['m']}",
                e["offer_zh"] or "–",
            ]
            for e in entries[:20]
        ],
    )
    if csv_file is not None:
        console.out.print(f"[green]wrote {len(entries):,} rows to {csv_file} 已导出[/]")


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to the main CLI."""
    app.command("lifecycle")(lifecycle_command)
    app.command("winback")(winback_command)
