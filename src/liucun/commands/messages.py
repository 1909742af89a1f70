"""`liucun messages …` (decisions and deliveries), `liucun channels …` (channel accounts) and
`liucun consent show` (a user's subscriptions). docs/messages.md."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine

cli = typer.Typer(help="Subscribe messages 订阅消息: list, deliver.", no_args_is_help=True)
channels_cli = typer.Typer(
    help="Channel accounts 消息渠道账号: WeChat, Alipay, webhook.", no_args_is_help=True
)
consent_cli = typer.Typer(help="Consent 订阅授权: a user's credits.", no_args_is_help=True)


def _context(app: str) -> tuple[Any, Any]:
    s = settings()
    return state_engine(s), resolve_app(s, app)


def _refused(exc: Exception) -> None:
    from liucun.loyalty.errors import LoyaltyError

    if isinstance(exc, LoyaltyError):
        console.fail(f"{exc.zh}\n{exc} [{exc.code}]")
    raise exc


@cli.command("list")
def messages_list(
    app: AppOption,
    status: Annotated[
        str | None,
        typer.Option(help="queued, held, skipped, sending, sent, refused or failed."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's messages.")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign's messages.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Messages, newest first, with their status and skip reason."""
    from liucun.engage.message_log import STATUSES, list_messages

    if status is not None and status not in STATUSES:
        console.fail(f"--status is one of {', '.join(STATUSES)}", code=2)
    engine, found = _context(app)
    rows = list_messages(engine, found.app_id, status, user, campaign, limit)
    if as_json:
        console.print_json(rows)
        return
    table = [
        [
            r["key"],
            r["user_id"],
            r["scenario"],
            r["status"],
            r["reason"] or "—",
            r["channel"] or "—",
            r["send_after"] or "—",
            r["attempts"],
        ]
        for r in rows
    ]
    console.print_table(
        "消息 messages",
        [
            "key",
            "用户 user",
            "场景 scenario",
            "状态 status",
            "原因 reason",
            "渠道 channel",
            "发送时间 send_after",
            "尝试 attempts",
        ],
        table,
    )


@cli.command("deliver")
def messages_deliver(app: AppOption, as_json: JsonOption = False) -> None:
    """Send the messages that are due now (the server does this every `deliver_every_s`)."""
    from liucun.engage.delivery import deliver_due

    s = settings()
    engine, found = _context(app)
    report = deliver_due(engine, found, datetime.now(UTC), settings=s).as_json()
    if as_json:
        console.print_json(report)
        return
    rows = [[k, v] for k, v in report.items() if k != "by_channel"]
    console.print_table("发送 delivery", ["", "n"], rows)


@channels_cli.command("set")
def channels_set(
    app: AppOption,
    channel: Annotated[str, typer.Argument(help="wechat, alipay or webhook.")],
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="A setting, NAME=VALUE (appid, app_id, url, lang...)."),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="A secret, NAME=VALUE (secret: the AppSecret...)."),
    ] = None,
    secret_file: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-file",
            help="A secret read from a file, NAME=PATH (private_key, alipay_public_key: PEM).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set the app's account on a channel; secrets are stored and never shown again."""
    from liucun.engage.channels.accounts import set_account

    def pairs(items: list[str] | None, what: str) -> dict[str, str]:
        out = {}
        for item in items or []:
            name, sep, value = item.partition("=")
            if not sep or not name:
                console.fail(f"{what} takes NAME=VALUE, got {item!r}", code=2)
            out[name] = value
        return out

    secrets = pairs(secret, "--secret")
    for name, path in pairs(secret_file, "--secret-file").items():
        try:
            secrets[name] = Path(path).read_text()
        except OSError as exc:
            console.fail(f"cannot read {path}: {exc}", code=2)
    engine, found = _context(app)
    try:
        shown = set_account(
            engine, found.app_id, channel, pairs(setting, "--set"), secrets, datetime.now(UTC)
        )
    except Exception as exc:
        _refused(exc)
        return
    if as_json:
        console.print_json(shown)
        return
    console.out.print(
        f"{channel}: {shown['settings']}; secrets set 已设置密钥: {', '.join(shown['secrets_set'])}"
    )


@channels_cli.command("show")
def channels_show(app: AppOption, as_json: JsonOption = False) -> None:
    """The app's channel accounts: settings, and which secrets are set (never their values)."""
    from liucun.engage.channels.accounts import channel_accounts

    engine, found = _context(app)
    accounts = channel_accounts(engine, found.app_id)
    if as_json:
        console.print_json(accounts)
        return
    rows = [
        [
            a["channel"],
            ", ".join(f"{k}={v}" for k, v in a["settings"].items()),
            ", ".join(a["secrets_set"]),
            a["updated_at"],
        ]
        for a in accounts
    ]
    console.print_table(
        "渠道 channels", ["channel", "设置 settings", "密钥 secrets", "更新 updated"], rows
    )


@consent_cli.command("show")
def consent_show(
    app: AppOption,
    user: Annotated[str, typer.Option(help="The user id.")],
    as_json: JsonOption = False,
) -> None:
    """A user's subscriptions: credits left, long-term, stance, per channel and template."""
    from liucun.engage.consent import subscriptions_of

    engine, found = _context(app)
    subs = subscriptions_of(engine, found.app_id, user)
    if as_json:
        console.print_json(subs)
        return
    rows = [
        [s["channel"], s["template_id"], s["credits"], s["long_term"], s["status"]] for s in subs
    ]
    console.print_table(
        f"订阅 subscriptions of {user}",
        ["channel", "template", "次数 credits", "长期 long_term", "状态 status"],
        rows,
    )
