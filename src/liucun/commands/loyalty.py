"""`liucun loyalty …`: signing keys and user tokens, members, points, the loyalty jobs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine

cli = typer.Typer(help="Loyalty 会员积分: members, points, coupons, keys.", no_args_is_help=True)
keys_cli = typer.Typer(help="Signing keys for user tokens 用户令牌签名密钥.", no_args_is_help=True)
cli.add_typer(keys_cli, name="signing-key")

KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Idempotency key: the same key again changes nothing."),
]


def _context(app: str) -> tuple[Any, Any]:
    from liucun.loyalty.programme import programme_of

    s = settings()
    found = resolve_app(s, app)
    engine = state_engine(s)
    return engine, programme_of(engine, found)


def _local(prog: Any, moment: Any) -> str:
    """A time as the app's operators read it: app-local, to the minute."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return str(prog.local(moment).strftime("%Y-%m-%d %H:%M"))


def _refused(exc: Exception) -> None:
    from liucun.loyalty.errors import LoyaltyError

    if isinstance(exc, LoyaltyError):
        console.fail(f"{exc.zh}\n{exc} [{exc.code}]")
    raise exc


@keys_cli.command("create")
def key_create(app: AppOption, as_json: JsonOption = False) -> None:
    """Create a key your backend signs user tokens with (the secret is shown once)."""
    from liucun.loyalty.tokens import create_signing_key

    engine, prog = _context(app)
    key = create_signing_key(engine, prog.app_id, datetime.now(UTC))
    if as_json:
        console.print_json(key.__dict__)
        return
    console.out.print(f"key_id 密钥 ID: {key.key_id}\nsecret 密钥:   {key.secret}")
    console.out.print(
        "保存好密钥:它不会再显示。Keep the secret on your backend: it is not shown again."
    )


@keys_cli.command("list")
def key_list(app: AppOption, as_json: JsonOption = False) -> None:
    """The app's signing keys (without secrets)."""
    from liucun.loyalty.tokens import signing_keys

    engine, prog = _context(app)
    keys = signing_keys(engine, prog.app_id)
    if as_json:
        console.print_json([k.__dict__ for k in keys])
        return
    rows = [[k.key_id, k.created_at, k.retired_at or "—"] for k in keys]
    console.print_table("签名密钥 signing keys", ["key_id", "创建 created", "停用 retired"], rows)


@keys_cli.command("retire")
def key_retire(app: AppOption, key_id: Annotated[str, typer.Argument()]) -> None:
    """Stop accepting tokens signed with KEY_ID."""
    from liucun.loyalty.tokens import retire_signing_key

    engine, prog = _context(app)
    if not retire_signing_key(engine, prog.app_id, key_id, datetime.now(UTC)):
        console.fail(f"no live signing key {key_id!r}: see `liucun loyalty signing-key list`")
    console.out.print(f"已停用 retired {key_id}")


@cli.command("token")
def token(
    app: AppOption,
    user: Annotated[str, typer.Option("--user", help="The user id the token is for.")],
    key_id: Annotated[str, typer.Option("--key-id", help="Signing key to sign with.")],
    ttl: Annotated[int, typer.Option("--ttl", help="Lifetime in seconds.")] = 3600,
) -> None:
    """Mint a user token, as the app's backend would (for trying the client API)."""
    from liucun.loyalty.tokens import live_secret, mint_user_token

    engine, prog = _context(app)
    secret = live_secret(engine, prog.app_id, key_id)
    if secret is None:
        console.fail(
            f"no live signing key {key_id!r}: create one with `liucun loyalty signing-key create`"
        )
    longest = settings().user_token_max_seconds
    if ttl > longest:
        console.fail(f"--ttl {ttl} is above LIUCUN_USER_TOKEN_MAX_SECONDS ({longest})", code=2)
    console.out.print(mint_user_token(prog.app_id, user, key_id, secret, datetime.now(UTC), ttl))


@cli.command("member")
def member(
    app: AppOption,
    user: Annotated[str, typer.Argument(help="The user id.")],
    as_json: JsonOption = False,
) -> None:
    """A member's points, level, benefits and latest points movements."""
    from liucun.loyalty.points import journal_of
    from liucun.loyalty.summary import member_summary

    engine, prog = _context(app)
    now = datetime.now(UTC)
    summary = member_summary(engine, prog, user, now)
    journal = journal_of(engine, prog.app_id, user, 20)
    if as_json:
        console.print_json({**summary, "journal": journal})
        return
    points, level = summary["points"], summary["level"]
    console.out.print(
        f"{user}: 积分 points {points['available']} 可用 available / {points['balance']} 余额 "
        f"balance · 等级 level {level['level']['zh']} {level['level']['en']}"
    )
    rows = [
        [
            _local(prog, j["created_at"]),
            j["kind"],
            j["points"],
            j["debit"] + " → " + j["credit"],
            j["rule"] or j["reason"] or "",
        ]
        for j in journal
    ]
    console.print_table(
        "积分流水 points journal",
        ["时间 at", "类型 kind", "积分 points", "账户 accounts", "来源 source"],
        rows,
    )


def _moved(outcome: Any, as_json: bool) -> None:
    if as_json:
        console.print_json({**outcome.result, "replayed": outcome.replayed})
        return
    r = outcome.result
    note = " (重复请求,未改变 replayed: nothing changed)" if outcome.replayed else ""
    console.out.print(f"{r['user_id']}: {r['points']:+} → 余额 balance {r['balance']}{note}")


@cli.command("award")
def award(
    app: AppOption,
    user: Annotated[str, typer.Argument(help="The user id.")],
    points: Annotated[int, typer.Argument(help="Points to give.", min=1)],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the journal).")],
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a member points."""
    from liucun.loyalty.points import award_points

    engine, prog = _context(app)
    try:
        outcome = award_points(
            engine, prog, user, points, key or str(uuid.uuid4()), datetime.now(UTC), reason
        )
    except Exception as exc:
        _refused(exc)
    _moved(outcome, as_json)


@cli.command("adjust")
def adjust(
    app: AppOption,
    user: Annotated[str, typer.Argument(help="The user id.")],
    delta: Annotated[
        int, typer.Option("--delta", help="Points in (> 0) or out (< 0), e.g. --delta -20.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, kept in the journal).")],
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Correct a member's points by hand, with a reason."""
    from liucun.loyalty.points import adjust_points

    if delta == 0:
        console.fail("DELTA must not be 0", code=2)
    engine, prog = _context(app)
    try:
        outcome = adjust_points(
            engine, prog, user, delta, key or str(uuid.uuid4()), datetime.now(UTC), reason
        )
    except Exception as exc:
        _refused(exc)
    _moved(outcome, as_json)


@cli.command("expiring-coupons")
def expiring_coupons_command(
    app: AppOption,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            max=60,
            help="Within N days (default: the playbook's expiry_reminder_days).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Coupons that expire soon (for expiry reminders)."""
    from liucun.loyalty.coupons import expiring_coupons

    engine, prog = _context(app)
    found = expiring_coupons(engine, prog, datetime.now(UTC), days)
    if as_json:
        console.print_json(found)
        return
    rows = [
        [
            c["user_id"],
            c["coupon"]["code"],
            c["coupon"]["template"],
            _local(prog, c["coupon"]["valid_until"]),
            c["days_left"],
        ]
        for c in found
    ]
    console.print_table(
        "即将过期的券 expiring coupons",
        ["用户 user", "券码 code", "模板 template", "有效期至 until", "剩余天数 days"],
        rows,
    )


@cli.command("run-jobs")
def run_jobs(app: AppOption, as_json: JsonOption = False) -> None:
    """Run the loyalty jobs now: expire points, review levels, close expired goals (the daily
    run does this too)."""
    from liucun.loyalty.jobs import run_loyalty_jobs

    engine, prog = _context(app)
    report = run_loyalty_jobs(engine, prog, datetime.now(UTC))
    if as_json:
        console.print_json(report)
        return
    for name, value in report.items():
        console.out.print(f"{name}: {value}")
