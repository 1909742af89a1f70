"""`liucun playbook …`: validate, show, diff and apply the playbook, and list its revisions."""

from __future__ import annotations

import shlex
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.markup import escape

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine
from liucun.playbook.load import (
    PlaybookError,
    decode_playbook,
    default_playbook,
    default_text,
    parse_playbook,
)
from liucun.playbook.schema import Playbook
from liucun.playbook.store import (
    InForce,
    playbook_changes,
    playbook_history,
    playbook_in_force,
    playbook_text,
    record_playbook,
    unified_diff,
)

cli = typer.Typer(help="The playbook: strategies as data 运营手册.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The playbook file (YAML).", show_default=False)]
MaybeApp = Annotated[str | None, typer.Option("--app", help="App name or id.")]


def _read(file: Path) -> str:
    if not file.is_file():
        console.fail(f"{escape(str(file))} does not exist or is not a file", code=2)
    return decode_playbook(file.read_bytes(), str(file))


def _refuse(exc: PlaybookError, as_json: bool, verdict: str, **extra: Any) -> NoReturn:
    """Every problem as `FILE:LINE:COL: path: message` (or JSON), then exit 1."""
    if as_json:
        problems = [asdict(p) for p in exc.problems]
        console.print_json({"valid": False, "problems": problems, **extra})
        raise typer.Exit(1)
    for problem in exc.problems:
        # plain lines, never wrapped: editors jump to FILE:LINE:COL
        typer.echo(problem.render(exc.source), err=True)
    console.fail(escape(verdict))


def _summary(playbook: Playbook) -> dict[str, Any]:
    churn = playbook.churn
    return {
        "version": playbook.version,
        "industry": churn.industry,
        "presets": list(churn.presets),
        "depth_signals": [s.name for s in churn.preset.depth_signals],
    }


@cli.command("validate")
def validate(file: FileArg, as_json: JsonOption = False) -> None:
    """Check FILE: exit 0 with a summary, or 1 with every problem by line."""
    try:
        playbook = parse_playbook(_read(file), str(file))
    except PlaybookError as exc:
        n = len(exc.problems)
        _refuse(exc, as_json, f"{file} is invalid 无效: {n} problem{'s' * (n != 1)}")
    summary = _summary(playbook)
    if as_json:
        console.print_json({"valid": True, **summary})
        return
    preset = playbook.churn.preset
    signals = ", ".join(summary["depth_signals"]) or "none"
    typer.echo(
        f"{file}: 有效 valid — version {playbook.version}; 行业 industry {preset.zh} "
        f"{playbook.churn.industry}; {len(summary['presets'])} 预设 presets "
        f"({', '.join(summary['presets'])}); 行为信号 depth signals: {signals}"
    )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _header(found: str | None, shown: InForce | None, revision: int) -> str:
    if revision == 0 and shown is None:
        return "# 内置默认 shipped default (revision 0)"
    if shown is None:
        return f"# app {found}: revision {revision}"
    if shown.revision == 0:
        return f"# app {found}: 内置默认 shipped default in force 生效中 (revision 0)"
    applied = _when(shown.created_at) if shown.created_at else "?"
    return f"# app {found}: revision {shown.revision} in force 生效中 (applied {applied})"


@cli.command("show")
def show(
    app_ref: MaybeApp = None,
    default: Annotated[bool, typer.Option("--default", help="The shipped default.")] = False,
    revision: Annotated[
        int | None, typer.Option("--revision", min=0, help="A stored revision (needs --app).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the playbook text in force for the app (the shipped default without --app)."""
    if default and revision is not None:
        console.fail("give --default or --revision, not both", code=2)
    if revision is not None and app_ref is None:
        console.fail("--revision needs --app: revisions belong to an app", code=2)
    shown: InForce | None = None
    playbook: Playbook | None
    warning = None
    if default or app_ref is None:
        text, number, playbook = default_text(), 0, default_playbook()
    else:
        s = settings()
        found = resolve_app(s, app_ref)
        engine = state_engine(s)
        if revision is None:
            shown = playbook_in_force(engine, found.app_id)
            text, number, playbook, warning = (
                shown.text,
                shown.revision,
                shown.playbook,
                shown.warning,
            )
        else:
            stored = playbook_text(engine, found.app_id, revision)
            if stored is None:
                newest = playbook_history(engine, found.app_id)
                known = f"1–{newest[0].revision}" if newest else "none yet"
                console.fail(f"app {found.name} has no revision {revision} (revisions: {known})", 2)
            text, number = stored, revision
            try:
                playbook = parse_playbook(stored)
            except PlaybookError as exc:  # applied under an older schema
                playbook, warning = None, f"revision {revision} no longer validates: {exc}"
    if as_json:
        console.print_json(
            {
                "revision": number,
                "text": text,
                "playbook": playbook.model_dump(mode="json") if playbook else None,
                "warning": warning,
                "created_at": shown.created_at if shown else None,
            }
        )
        return
    typer.echo(_header(app_ref, shown, number), err=True)
    if warning:
        console.err.print(f"[yellow]注意 warning:[/] {escape(warning)}")
    typer.echo(text, nl=not text.endswith("\n"))


def _value(value: Any) -> str:
    return "—" if value is None else orjson.dumps(value).decode()


@cli.command("diff")
def diff(file: FileArg, app_ref: MaybeApp = None, as_json: JsonOption = False) -> None:
    """The settings FILE would change against the playbook in force, then the text diff."""
    try:
        text = _read(file)
        new = parse_playbook(text, str(file))
    except PlaybookError as exc:
        _refuse(exc, as_json, f"{file} is invalid 无效: nothing to compare")
    if app_ref is None:
        base = InForce(0, default_playbook(), default_text(), None)
        base_name = "default.yaml"
    else:
        s = settings()
        found = resolve_app(s, app_ref)
        base = playbook_in_force(state_engine(s), found.app_id)
        base_name = f"{found.name} revision {base.revision}"
    changes = playbook_changes(base.playbook, new)
    text_diff = unified_diff(base.text, text, base_name, str(file))
    if as_json:
        console.print_json(
            {
                "base_revision": base.revision,
                "changes": [asdict(c) for c in changes],
                "unified_diff": text_diff,
            }
        )
        return
    if changes:
        # plain lines, one per setting: long paths stay whole and greppable
        typer.echo(f"{len(changes)} 项变化 changes: {base_name} → {file}")
        for c in changes:
            typer.echo(f"  {c.path}: {_value(c.old)} → {_value(c.new)}")
    else:
        typer.echo(f"无变化 no changes to the settings of {base_name}")
    if text_diff:
        typer.echo(text_diff, nl=False)


@cli.command("apply")
def apply(
    file: FileArg,
    app_ref: AppOption,
    note: Annotated[str | None, typer.Option("--note", help="Why, for the history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Put FILE in force for the app as its next revision; a broken file is refused."""
    if not file.is_file():
        console.fail(f"{escape(str(file))} does not exist or is not a file", code=2)
    s = settings()
    found = resolve_app(s, app_ref)
    engine = state_engine(s)
    try:
        applied = record_playbook(engine, found.app_id, _read(file), note, str(file))
    except PlaybookError as exc:
        kept = playbook_in_force(engine, found.app_id).revision
        _refuse(
            exc,
            as_json,
            f"{file} refused 已拒绝; revision {kept} stays in force 仍生效",
            revision=kept,
        )
    except ValueError as exc:  # the note
        console.fail(escape(str(exc)), code=2)
    if as_json:
        console.print_json({"revision": applied.revision, "created": applied.created})
        return
    same = "" if applied.created else " (unchanged 未变化)"
    typer.echo(f"revision {applied.revision} in force 已生效{same}")
    if applied.created:
        # labels already in the history keep the revision they were made under
        console.err.print(
            "[dim]days labelled from now on use it; to relabel the past 重新标注历史: "
            f"liucun lifecycle --app {shlex.quote(found.name)} --from YYYY-MM-DD --relabel[/]",
            soft_wrap=True,
        )


@cli.command("history")
def history(app_ref: AppOption, as_json: JsonOption = False) -> None:
    """The app's playbook revisions, newest first."""
    s = settings()
    found = resolve_app(s, app_ref)
    engine = state_engine(s)
    revisions = playbook_history(engine, found.app_id)
    in_force = playbook_in_force(engine, found.app_id)
    if as_json:
        console.print_json(
            [{**asdict(r), "in_force": r.revision == in_force.revision} for r in revisions]
        )
        return
    if in_force.warning:
        console.err.print(f"[yellow]注意 warning:[/] {escape(in_force.warning)}")
    if not revisions:
        typer.echo(f"app {found.name}: 内置默认 shipped default in force (no revisions yet)")
        return
    console.print_table(
        f"playbook revisions 运营手册版本 — {escape(found.name)}",
        ["revision", "applied (UTC) 应用时间", "sha256", "note 备注", ""],
        [
            (
                r.revision,
                _when(r.created_at),
                r.sha256[:12],
                escape(r.note or ""),
                "生效中 in force" if r.revision == in_force.revision else "",
            )
            for r in revisions
        ],
    )
