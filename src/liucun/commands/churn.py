"""`liucun churn …`: the churn-risk model (train, score, top, user) and BG/NBD for buyers."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings, state_engine

if TYPE_CHECKING:
    from liucun.server_file import ServerClient

cli = typer.Typer(help="Churn risk 流失风险: model training, scores, BG/NBD.", no_args_is_help=True)

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="App-local day, YYYY-MM-DD (default: the latest with data)."),
]


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        console.fail(f"--as-of {value!r} is not a date: use YYYY-MM-DD", code=2)


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _post(client: ServerClient, app_id: str, path: str, body: dict[str, Any]) -> Any:
    """Ask the running server that holds the embedded event store to do the work."""
    from liucun.server_file import ServerRefusedError

    try:
        return client.post_json(f"/admin/v1/apps/{app_id}/churn/{path}", body)
    except ServerRefusedError as exc:
        console.fail(str(exc), code=2)
    finally:
        client.http.close()


@cli.command("train")
def train_command(
    app_ref: AppOption,
    as_of: AsOfOption = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon", min=7, max=180, help="Days without activity that count as churned."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train the churn-risk model as of a day: features at (day − horizon), labels from the
    horizon after it; prints the held-out figures against the recency-only baseline."""
    from liucun.lifecycle.risk import STAGES, RiskError, train, trained_json
    from liucun.local import open_store_or_server
    from liucun.playbook.store import playbook_in_force
    from liucun.server_file import ServerClient

    day = _day(as_of)
    s = settings()
    app = resolve_app(s, app_ref)
    state = state_engine(s)
    risk = playbook_in_force(state, app.app_id).playbook.risk
    store = open_store_or_server(s)
    if isinstance(store, ServerClient):
        console.err.print("[dim]training on the server (no progress shown) 服务器上训练中…[/]")
        out = _post(store, app.app_id, "train", {"as_of": day, "horizon_days": horizon})
    else:
        zh = {name: label for name, label, _ in STAGES}
        try:
            with console.progress("churn model 流失风险模型", total=None) as bar:
                task = bar.task_ids[0]

                def step(stage: str, done: int, total: int) -> None:
                    bar.update(
                        task, completed=done, total=total, description=f"{zh[stage]} {stage}"
                    )

                trained = train(store, state, app, risk, day, horizon, step)
        except RiskError as exc:
            console.fail(str(exc), code=2)
        finally:
            store.close()
        out = trained_json(trained)
    if as_json:
        console.print_json(out)
        return
    _show_trained(out)


def _show_trained(out: dict[str, Any]) -> None:
    held = out["held_out"]
    model, baseline, gains = held["model"], held["baseline"], held["gains"]
    console.print_table(
        f"churn model 流失风险模型 {out['model_id']} · features 特征 {out['features_as_of']}, "
        f"labels 标签 to {out['as_of']} ({out['horizon_days']} days)",
        ["held-out 留出用户", "model 模型", "recency baseline 仅看最近活跃", "gain 提升"],
        [
            ("persons 人数", model["persons"], baseline["persons"], ""),
            (
                "churn rate 流失率",
                _figure(model["churn_rate"]),
                _figure(baseline["churn_rate"]),
                "",
            ),
            ("mean risk 平均风险", _figure(model["mean_risk"]), _figure(baseline["mean_risk"]), ""),
            (
                "ROC-AUC",
                _figure(model["roc_auc"]),
                _figure(baseline["roc_auc"]),
                _signed(gains["roc_auc"]),
            ),
            (
                "PR-AUC",
                _figure(model["pr_auc"]),
                _figure(baseline["pr_auc"]),
                _signed(gains["pr_auc"]),
            ),
            (
                "Brier (lower 越低越好)",
                _figure(model["brier"]),
                _figure(baseline["brier"]),
                _signed(gains["brier"]),
            ),
        ],
    )
    console.out.print(
        f"trained on 训练人数 {out['training_persons']:,} persons; "
        "next: `liucun churn score` 下一步：评分"
    )


@cli.command("score")
def score_command(
    app_ref: AppOption, as_of: AsOfOption = None, as_json: JsonOption = False
) -> None:
    """Score every person active in the 90 days to a day with the latest model and store the
    risks and reasons (a person's previous risk is kept beside the new one)."""
    from liucun.lifecycle.risk import RiskError
    from liucun.lifecycle.risk_scores import score, scored_json
    from liucun.local import open_store_or_server
    from liucun.playbook.store import playbook_in_force
    from liucun.server_file import ServerClient

    day = _day(as_of)
    s = settings()
    app = resolve_app(s, app_ref)
    state = state_engine(s)
    risk = playbook_in_force(state, app.app_id).playbook.risk
    store = open_store_or_server(s)
    if isinstance(store, ServerClient):
        out = _post(store, app.app_id, "score", {"as_of": day})
    else:
        try:
            with console.progress("churn scores 流失风险评分", total=None):
                scored = score(store, state, app, risk, day)
        except RiskError as exc:
            console.fail(str(exc), code=2)
        finally:
            store.close()
        out = scored_json(scored)
    if as_json:
        console.print_json(out)
        return
    console.print_table(
        f"churn scores 流失风险评分 · {app.name}",
        [
            "as of 日期",
            "persons 人数",
            f"high risk 高风险 (≥ {risk.high_risk})",
            "mean risk 平均风险",
            "model 模型",
        ],
        [
            (
                out["as_of"],
                f"{out['persons']:,}",
                f"{out['high_risk']:,}",
                f"{out['mean_risk']:.3f}",
                out["model_id"],
            )
        ],
    )


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['zh']} {r['en']} (+{r['contribution']:.2f})" for r in reasons) or "–"


@cli.command("top")
def top_command(
    app_ref: AppOption,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Persons listed.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The persons at the highest churn risk, with the reasons that push it up."""
    from liucun.lifecycle.risk_scores import person_risk_json, top_risks
    from liucun.playbook.store import playbook_in_force

    s = settings()
    app = resolve_app(s, app_ref)
    state = state_engine(s)
    risk = playbook_in_force(state, app.app_id).playbook.risk
    rows = [person_risk_json(p) for p in top_risks(state, app.app_id, risk, limit)]
    if as_json:
        console.print_json({"app_id": app.app_id, "scores": rows})
        return
    if not rows:
        console.fail(f"app {app.name} has no churn scores: run `liucun churn score` first")
    console.print_table(
        f"highest churn risk 流失风险最高 · {app.name} · as of {rows[0]['as_of']}",
        ["person 用户", "risk 风险", "previous 上次", "reasons 原因"],
        [
            (
                r["person_id"],
                f"{r['risk']:.3f}",
                "–" if r["previous_risk"] is None else f"{r['previous_risk']:.3f}",
                _reasons_text(r["reasons"]),
            )
            for r in rows
        ],
    )


@cli.command("user")
def user_command(person: str, app_ref: AppOption, as_json: JsonOption = False) -> None:
    """One person's churn risk and its reasons."""
    from liucun.lifecycle.risk_scores import person_risk, person_risk_json
    from liucun.playbook.store import playbook_in_force

    s = settings()
    app = resolve_app(s, app_ref)
    state = state_engine(s)
    risk = playbook_in_force(state, app.app_id).playbook.risk
    found = person_risk(state, app.app_id, person, risk)
    if found is None:
        console.fail(
            f"person {person!r} has no churn score in app {app.name}: not active in the 90 days "
            "scored, or `liucun churn score` has not run"
        )
    out = person_risk_json(found)
    if as_json:
        console.print_json(out)
        return
    level = "high 高" if out["high_risk"] else "not high 非高"
    console.print_table(
        f"{person} · churn risk 流失风险 {out['risk']:.3f} ({level}) · as of {out['as_of']}",
        ["reason 原因", "value 当前值", "healthy 健康参考", "adds 风险增加"],
        [
            (
                f"{r['zh']} {r['en']}",
                "–" if r["value"] is None else f"{r['value']:.4g}",
                f"{r['reference']:.4g}",
                f"+{r['contribution']:.3f}",
            )
            for r in out["reasons"]
        ],
    )
