"""`liucun segments …`, `liucun tags …` and `liucun profiles …`: segments (rules, preview,
refresh, members), manual tags, and user profiles (docs/segments.md)."""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine

cli = typer.Typer(help="Segments 用户分群: rules, preview, refresh, members.", no_args_is_help=True)
tags_cli = typer.Typer(help="Tags 用户标签: add, remove, list.", no_args_is_help=True)
profiles_cli = typer.Typer(help="Profiles 用户画像: show, import.", no_args_is_help=True)

RuleOption = Annotated[
    str | None, typer.Option("--rule", help="The rule as JSON or YAML text (docs/segments.md).")
]
FileOption = Annotated[
    Path | None, typer.Option("--file", help="A file holding the rule (JSON or YAML).")
]
DateOption = Annotated[
    str | None, typer.Option("--date", help="App-local day (default: the latest with data).")
]
ByOption = Annotated[str | None, typer.Option("--by", help="Who (default: your login name).")]


def _refused(exc: Exception) -> NoReturn:
    from liucun.engage.segment_errors import SegmentError

    if isinstance(exc, SegmentError):
        lines = [f"{exc.zh}", f"{exc} [{exc.code}]"]
        console.fail("\n".join(lines), code=2 if exc.status == 422 else 1)
    raise exc


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        console.fail(f"--date must be a date like 2026-10-31, got {value!r}", code=2)


def _rule_text(rule: str | None, file: Path | None) -> str:
    if (rule is None) == (file is None):
        console.fail("give the rule with --rule TEXT or --file PATH (one of them)", code=2)
    if file is not None:
        try:
            return file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            console.fail(f"cannot read {file}: {exc}", code=2)
    assert rule is not None
    return rule


def _parse(text: str) -> Any:
    from liucun.engage.segment_rules import RuleError, rule_from_text
    from liucun.engage.segments import invalid_rule

    try:
        return rule_from_text(text)
    except RuleError as exc:
        _refused(invalid_rule(exc))


def _through_server(call: Any) -> Any:
    """A call of the local server's admin API; its refusal printed as ours."""
    import httpx

    from liucun.server_file import ServerRefusedError

    try:
        return call()
    except ServerRefusedError as exc:
        console.fail(str(exc), code=2)
    except httpx.HTTPStatusError as exc:
        detail = exc.response.json().get("detail", exc.response.text)
        if isinstance(detail, dict):
            detail = f"{detail.get('zh', '')}\n{detail.get('message', '')} [{detail.get('code')}]"
        console.fail(str(detail))


def _with_store(app_ref: str, local: Any, remote: Any) -> tuple[Any, Any]:
    """(app, result): `local(store, engine, app)` on this machine's event store, or
    `remote(client, app)` through the server that holds it."""
    from liucun.local import open_store_or_server
    from liucun.server_file import ServerClient

    s = settings()
    app = resolve_app(s, app_ref)
    target = open_store_or_server(s)
    if isinstance(target, ServerClient):
        return app, _through_server(lambda: remote(target, app))
    try:
        return app, local(target, state_engine(s), app)
    except Exception as exc:
        _refused(exc)
    finally:
        target.close()
    raise AssertionError("unreachable")


def _state(app_ref: str) -> tuple[Any, Any]:
    s = settings()
    return resolve_app(s, app_ref), state_engine(s)


def _rule_line(rule: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(rule).decode()


@cli.command("list")
def segments_list(app: AppOption, as_json: JsonOption = False) -> None:
    """Every named segment: the playbook's and the saved ones, with the last refresh."""
    from liucun.engage.segments import list_segments, refresh_state

    found, engine = _state(app)
    rows = []
    for segment in list_segments(engine, found.app_id):
        rows.append(
            {**segment.as_json(), "last_refresh": refresh_state(engine, found.app_id, segment.name)}
        )
    if as_json:
        console.print_json(rows)
        return
    table = []
    for r in rows:
        last = r["last_refresh"]
        shown = f"{last['size']} @ {last['as_of']}" if last else "—"
        table.append([r["name"], r["source"], shown, _rule_line(r["rule"])])
    console.print_table(
        f"分群 segments · {found.name}",
        ["名称 name", "来源 source", "人数 size @ day", "规则 rule"],
        table,
    )


@cli.command("show")
def segments_show(
    app: AppOption, name: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """A segment's rule, where it comes from and its last refresh."""
    from liucun.engage.segments import find_segment, refresh_log

    found, engine = _state(app)
    try:
        segment = find_segment(engine, found, name)
    except Exception as exc:
        _refused(exc)
    log = refresh_log(engine, found.app_id, name, 10)
    if as_json:
        console.print_json({**segment.as_json(), "refreshes": log})
        return
    console.out.print(f"{segment.name} ({segment.source}) {segment.description or ''}")
    console.out.print(_rule_line(segment.as_json()["rule"]))
    console.print_table(
        "最近刷新 recent refreshes",
        ["日期 as_of", "刷新于 at", "人数 size", "进入 entered", "离开 left", "秒 s"],
        [
            [r["as_of"], r["refreshed_at"], r["size"], r["entered"], r["left"], r["seconds"]]
            for r in log
        ],
    )


@cli.command("save")
def segments_save(
    app: AppOption,
    name: Annotated[str, typer.Argument(help="lowercase_name")],
    rule: RuleOption = None,
    file: FileOption = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    as_json: JsonOption = False,
) -> None:
    """Save a segment (create or replace) after checking its rule."""
    from liucun.engage.segments import save_segment

    parsed = _parse(_rule_text(rule, file))
    found, engine = _state(app)
    try:
        saved = save_segment(engine, found.app_id, name, parsed, datetime.now(UTC), description)
    except Exception as exc:
        _refused(exc)
    if as_json:
        console.print_json(saved.as_json())
        return
    console.out.print(f"已保存 saved {saved.name}: {_rule_line(saved.as_json()['rule'])}")


@cli.command("delete")
def segments_delete(
    app: AppOption,
    name: Annotated[str, typer.Argument(help="A saved segment.")],
) -> None:
    """Delete a saved segment (its open memberships end now; its history stays)."""
    from liucun.engage.segments import delete_segment

    found, engine = _state(app)
    try:
        delete_segment(engine, found.app_id, name, datetime.now(UTC))
    except Exception as exc:
        _refused(exc)
    console.out.print(f"已删除 deleted {name}")


@cli.command("preview")
def segments_preview(
    app: AppOption,
    rule: RuleOption = None,
    file: FileOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Preview a named segment.")] = None,
    day: DateOption = None,
    sample: Annotated[int | None, typer.Option("--sample", min=0, max=500)] = None,
    as_json: JsonOption = False,
) -> None:
    """How many users a rule (or a named segment) selects, with a sample and their traits."""
    from liucun.engage.segment_rules import rule_json
    from liucun.engage.segments import find_segment, preview
    from liucun.lifecycle.daily import data_day

    as_of = _day(day)
    if name is not None:
        found, engine = _state(app)
        try:
            parsed = find_segment(engine, found, name).rule
        except Exception as exc:
            _refused(exc)
    else:
        parsed = _parse(_rule_text(rule, file))

    def local(store: Any, engine: Any, found: Any) -> Any:
        return preview(store, engine, found, parsed, as_of or data_day(store, found), sample)

    def remote(client: Any, found: Any) -> Any:
        body = {"rule": rule_json(parsed), "as_of": as_of, "sample": sample}
        return client.post_json(f"/admin/v1/apps/{found.app_id}/segments/preview", body)

    found, out = _with_store(app, local, remote)
    if as_json:
        console.print_json(out)
        return
    console.out.print(f"{out['count']} / {out['users']} 位用户 users match (as of {out['as_of']})")
    keys = [
        "user_id",
        "lifecycle_label",
        "days_inactive",
        "visits_30d",
        "orders_total",
        "rfm_value",
        "churn_risk",
        "level",
        "points",
    ]
    console.print_table(
        "样本 sample",
        keys,
        [["—" if r.get(k) is None else r[k] for k in keys] for r in out["sample"]],
    )


@cli.command("refresh")
def segments_refresh(
    app: AppOption,
    name: Annotated[
        str | None, typer.Argument(help="A segment, or tag:NAME (default: all).")
    ] = None,
    day: DateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-evaluate a segment (or every rule tag and segment) and record who entered and left."""
    from liucun.engage.segments import refresh_all, refresh_segment
    from liucun.lifecycle.daily import data_day

    as_of = _day(day)

    def local(store: Any, engine: Any, found: Any) -> Any:
        when, now = as_of or data_day(store, found), datetime.now(UTC)
        if name is None:
            return [r.as_json() for r in refresh_all(store, engine, found, when, now)]
        return [refresh_segment(store, engine, found, name, when, now).as_json()]

    def remote(client: Any, found: Any) -> Any:
        from liucun.engage.segments import list_segments
        from liucun.playbook.store import playbook_in_force

        names = [name] if name is not None else None
        if names is None:
            engine = state_engine(settings())
            tags = playbook_in_force(engine, found.app_id).playbook.engage.segments.rule_tags
            names = [f"tag:{t}" for t in tags] + [
                s.name for s in list_segments(engine, found.app_id)
            ]
        params = {"date": as_of.isoformat()} if as_of else None
        return [
            client.post(f"/admin/v1/apps/{found.app_id}/segments/{n}/refresh", params)
            for n in names
        ]

    found, reports = _with_store(app, local, remote)
    if as_json:
        console.print_json(reports)
        return
    console.print_table(
        f"分群刷新 segment refresh · {found.name}",
        ["分群 segment", "日期 as_of", "人数 size", "进入 entered", "离开 left", "秒 s"],
        [
            [
                r["segment"],
                r["as_of"],
                r["size"],
                r["entered"],
                r["left"],
                round(float(r["seconds"]), 2),
            ]
            for r in reports
        ],
    )


@cli.command("members")
def segments_members(
    app: AppOption,
    name: Annotated[str, typer.Argument(help="A segment, or tag:NAME.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000)] = 100,
    user: Annotated[str | None, typer.Option("--user", help="This user's spells instead.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The segment's members as of its last refresh (or one user's entered/left history)."""
    from liucun.engage.segments import member_spells, refresh_state, segment_members

    found, engine = _state(app)
    if user is not None:
        spells = member_spells(engine, found.app_id, name, user)
        if as_json:
            console.print_json(spells)
            return
        console.print_table(
            f"{user} · {name}",
            ["进入 entered_at", "离开 left_at"],
            [[s["entered_at"], s["left_at"] or "—"] for s in spells],
        )
        return
    users = segment_members(engine, found.app_id, name)
    last = refresh_state(engine, found.app_id, name)
    if as_json:
        console.print_json(
            {"segment": name, "last_refresh": last, "size": len(users), "users": users[:limit]}
        )
        return
    if last is None:
        console.fail(f"segment {name!r} was never refreshed: run `liucun segments refresh`")
    console.out.print(f"{name}: {len(users)} 位成员 members (as of {last['as_of']})")
    for u in users[:limit]:
        console.out.print(u)


def _rule_tags(engine: Any, app_id: str) -> set[str]:
    from liucun.playbook.store import playbook_in_force

    return set(playbook_in_force(engine, app_id).playbook.engage.segments.rule_tags)


def _change_tag(app: str, user: str, tag: str, by: str | None, note: str | None, add: bool) -> bool:
    """Add or remove a manual tag, logged with who and when; whether anything changed."""
    from liucun.engage.tags import add_tag, remove_tag

    found, engine = _state(app)
    change = add_tag if add else remove_tag
    try:
        return change(
            engine,
            found.app_id,
            user,
            tag,
            by or getpass.getuser(),
            datetime.now(UTC),
            _rule_tags(engine, found.app_id),
            note,
        )
    except Exception as exc:
        _refused(exc)


NoteOption = Annotated[str | None, typer.Option("--note", help="Why (kept in the log).")]


@tags_cli.command("add")
def tags_add(
    app: AppOption,
    user: Annotated[str, typer.Argument(help="The user id.")],
    tag: Annotated[str, typer.Argument()],
    by: ByOption = None,
    note: NoteOption = None,
) -> None:
    """Give a user a manual tag (logged with who and when)."""
    added = _change_tag(app, user, tag, by, note, add=True)
    console.out.print(f"{user} + {tag}" + ("" if added else " (已有 already there)"))


@tags_cli.command("remove")
def tags_remove(
    app: AppOption,
    user: Annotated[str, typer.Argument(help="The user id.")],
    tag: Annotated[str, typer.Argument()],
    by: ByOption = None,
    note: NoteOption = None,
) -> None:
    """Take a manual tag from a user (logged)."""
    removed = _change_tag(app, user, tag, by, note, add=False)
    console.out.print(f"{user} − {tag}" + ("" if removed else " (本无此标签 did not have it)"))


@tags_cli.command("list")
def tags_list(
    app: AppOption,
    user: Annotated[str | None, typer.Option("--user", help="This user's tags and log.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Tags in use (manual and rule, with their users), or one user's tags and tag log."""
    from liucun.engage.tags import tag_counts, tag_log, user_tags

    found, engine = _state(app)
    if user is None:
        counts = tag_counts(engine, found.app_id)
        if as_json:
            console.print_json(counts)
            return
        console.print_table(
            f"标签 tags · {found.name}",
            ["标签 tag", "来源 source", "用户 users"],
            [[c["tag"], c["source"], c["users"]] for c in counts],
        )
        return
    tags = user_tags(engine, found.app_id, user)
    log = tag_log(engine, found.app_id, user_id=user)
    if as_json:
        console.print_json({"user_id": user, "tags": tags, "log": log})
        return
    console.print_table(
        f"{user} · 标签 tags",
        ["标签 tag", "来源 source", "添加人 by", "添加于 at"],
        [[t["tag"], t["source"], t["added_by"], t["added_at"]] for t in tags],
    )
    console.print_table(
        "标签记录 tag log",
        ["时间 at", "标签 tag", "操作 action", "操作人 by", "备注 note"],
        [[r["at"], r["tag"], r["action"], r["actor"], r["note"] or ""] for r in log],
    )


@profiles_cli.command("show")
def profiles_show(
    app: AppOption,
    user: Annotated[str, typer.Argument(help="The user id.")],
    day: DateOption = None,
    as_json: JsonOption = False,
) -> None:
    """A user's attributes, traits, tags and segments."""
    from liucun.engage.segments import user_profile
    from liucun.lifecycle.daily import data_day

    as_of = _day(day)

    def local(store: Any, engine: Any, found: Any) -> Any:
        return user_profile(
            store, engine, found, user, as_of or data_day(store, found), datetime.now(UTC)
        )

    def remote(client: Any, found: Any) -> Any:
        params = {"date": as_of.isoformat()} if as_of else None
        return client.get(f"/admin/v1/apps/{found.app_id}/users/{user}/profile", params)

    _, profile = _with_store(app, local, remote)
    if as_json:
        console.print_json(profile)
        return
    console.out.print(f"{user} (as of {profile['as_of']})")
    rows = [["attribute", k, v["value"]] for k, v in profile["attributes"].items()]
    rows += [["trait", k, "—" if v is None else v] for k, v in profile["traits"].items()]
    rows += [["tag", t["tag"], t["source"]] for t in profile["tags"]]
    rows += [["segment", s["segment"], s["entered_at"]] for s in profile["segments"]]
    console.print_table("用户画像 profile", ["类别 kind", "名称 name", "值 value"], rows)


@profiles_cli.command("import")
def profiles_import(
    app: AppOption,
    file: Annotated[Path, typer.Argument(help=".jsonl or .csv: user_id plus attribute columns.")],
    as_json: JsonOption = False,
) -> None:
    """Import users' attributes (a row per user; the file's other columns are attributes)."""
    from liucun.engage.profiles import import_attributes
    from liucun.events.users import read_user_chunks

    found, engine = _state(app)
    accepted = values = 0
    rejected: list[tuple[int, str]] = []
    try:
        chunks = list(read_user_chunks(file))
    except (OSError, ValueError) as exc:
        console.fail(str(exc), code=2)
    for chunk in chunks:
        report = import_attributes(
            engine, found.app_id, [row for _, row in chunk], datetime.now(UTC)
        )
        accepted, values = accepted + report.accepted, values + report.values
        rejected += [(chunk[i][0], why) for i, why in report.rejected]
    out = {
        "accepted": accepted,
        "values": values,
        "rejected": [{"line": n, "reason": w} for n, w in rejected],
    }
    if as_json:
        console.print_json(out)
        return
    console.out.print(
        f"{accepted} 位用户 users, {values} 个属性 values imported; {len(rejected)} rejected"
    )
    for line, why in rejected[:20]:
        console.out.print(f"  line {line}: {why}")
