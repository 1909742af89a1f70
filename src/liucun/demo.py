"""`liucun demo`: a simulated mini-program's 90 days, ingested, summarised and served."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from liucun import console
from liucun.analytics import Headline, headline
from liucun.analytics.metrics import compute
from liucun.analytics.params import parse_params
from liucun.config import Settings
from liucun.events.columnar import complete_table
from liucun.sim import SimConfig, simulate
from liucun.state.apps import App, AppError, create_app, find_app
from liucun.state.db import open_state
from liucun.warehouse.store import EventStore, StoreBusyError, open_event_store

DEMO_APP = "demo"


def demo_app(state: sa.Engine, timezone: str) -> tuple[App, bool]:
    """The demo app, created (and its keys shown) on first use; True if it was created."""
    try:
        return find_app(state, DEMO_APP), False
    except AppError:
        creds = create_app(state, DEMO_APP, timezone)
    console.print_table(
        "demo app created 演示应用已创建",
        ["field", "value"],
        [
            ("app_id", creds.app_id),
            ("write_key", creds.write_key),
            ("admin_token", creds.admin_token),
        ],
    )
    return find_app(state, DEMO_APP), True


def ingest_simulation(store: EventStore, app: App, config: SimConfig) -> int:
    """Simulate `config` and store its events for `app` with a progress bar; returns new events."""
    new = 0
    received = datetime.now(UTC)
    zone = ZoneInfo(app.timezone)
    with console.progress("simulate + ingest 模拟并写入 (days)", config.days) as bar:
        task = bar.task_ids[0]
        for chunk in simulate(config):
            table = complete_table(chunk, app.app_id, received)
            new += int(store.append(table, {app.app_id: app.timezone}).sum())
            first_day = chunk.column("ts")[0].as_py().astimezone(zone).date()
            bar.update(task, completed=(first_day - config.start).days + 1)
        bar.update(task, completed=config.days)
    return new


def show_headline(h: Headline) -> None:
    console.print_table(
        f"headline 核心指标 {h.first_day} – {h.last_day}",
        ["metric 指标", "value 数值", "note 说明"],
        [
            ("MAU 月活", f"{h.mau:,}", "people active in the 30 days"),
            ("mean daily UV 日均访客", f"{h.mean_dau:,.0f}", ""),
            ("MAU ÷ daily UV", f"{h.mau_to_dau:.1f}×", "seeds aim for 15–20×"),
            ("visits 访问次数", f"{h.visits:,}", "app_open events"),
            ("events 事件", f"{h.events:,}", ""),
            ("orders 订单", f"{h.orders:,}", "order_paid"),
            ("revenue 销售额 (¥)", f"{h.revenue:,.2f}", ""),
        ],
    )


def show_retention(store: EventStore, app: App, last_day: date) -> None:
    """D1, D7 and D30 retention of the last 60 days' daily cohorts old enough for each."""
    options = {
        "period": "day",
        "intervals": 31,
        "from": last_day - timedelta(days=59),
        "to": last_day,
    }
    data = compute(store, app, "retention", parse_params(options))
    rows = []
    for k in (1, 7, 30):
        known = [c for c in data if len(c["counts"]) > k and c["size"]]
        size = sum(c["size"] for c in known)
        back = sum(c["counts"][k] for c in known)
        rows.append(
            (
                f"D{k} {k}日留存" if k > 1 else "D1 次日留存",
                f"{back / size:.1%}" if size else "–",
                f"{len(known)} daily cohorts",
            )
        )
    console.print_table(
        "retention 留存 (new users 新用户)", ["", "retained 留存率", "over 基于"], rows
    )


def show_lifecycle(store: EventStore, state: sa.Engine, app: App, last_day: date) -> None:
    """The users' lifecycle labels on the last day, and who to win back by reason."""
    from liucun.lifecycle.daily import plan_labels, run_labels
    from liucun.lifecycle.label_names import LABEL_NAMES, LABELS
    from liucun.lifecycle.winback import winback_list

    plan = plan_labels(store, state, app, last_day, last_day, relabel=False)
    counts = run_labels(store, state, app, plan)[-1].counts
    total = sum(counts.values()) or 1
    console.print_table(
        f"lifecycle labels 生命周期标签 {last_day}",
        ["label 标签", "users 用户", "share 占比"],
        [(LABEL_NAMES[x], f"{counts[x]:,}", f"{counts[x] / total:.1%}") for x in LABELS],
    )
    groups: dict[str, list[int]] = {}
    for e in winback_list(store, state, app, last_day, 1_000_000):
        g = groups.setdefault(f"{e.reason_zh} / {e.reason_en}", [0, 0])
        g[0] += 1
        g[1] += e.offer is not None
    console.print_table(
        "win-back 召回 (silent + churned, by main reason)",
        ["reason 原因", "users 用户", "with an offer 有权益"],
        [
            (k, f"{v[0]:,}", f"{v[1]:,}")
            for k, v in sorted(groups.items(), key=lambda g: -g[1][0])[:8]
        ],
    )


def run_demo(s: Settings, users: int, days: int, host: str, port: int, serve: bool) -> None:
    state = open_state(s.state_store_url)
    app, _ = demo_app(state, s.timezone)
    try:
        store = open_event_store(s.event_store_url)
    except StoreBusyError as exc:
        console.fail(f"{exc}. The demo needs the store to itself: stop the server first.")
    if store.count(app.app_id):
        console.out.print(
            f"[dim]the demo app already has {store.count(app.app_id):,} events; "
            f"delete {s.data_dir} to simulate afresh[/]"
        )
    else:
        start = date.today() - timedelta(days=days)
        config = SimConfig(users=users, days=days, start=start, timezone=app.timezone)
        added = ingest_simulation(store, app, config)
        console.out.print(f"stored {added:,} events of {users:,} simulated users over {days} days")
    figures = headline(store, app.app_id)
    show_headline(figures)
    show_retention(store, app, figures.last_day)
    show_lifecycle(store, state, app, figures.last_day)
    console.out.print(
        "more 更多指标: liucun metrics mau-report|retention|lifecycle|funnel|exits|performance "
        "--app demo (docs/metrics.md); liucun lifecycle|winback --app demo (docs/lifecycle.md)"
    )
    if not serve:
        store.close()
        return
    from liucun.local import serve_with_store

    base = f"http://{host}:{port}"
    console.out.print(
        f"\n[bold]liucun is serving on {base}[/]  (Ctrl-C to stop)\n"
        f"  dashboard 运营看板:  {base}/dashboard/  (log in with the demo app's admin_token, "
        "printed when it was created, or with LIUCUN_ADMIN_TOKEN)\n"
        f"  API docs 接口文档:   {base}/docs\n"
        f"  health 健康检查:     {base}/healthz\n"
        f"  send events 发送事件: POST {base}/v1/batch\n"
        f"  write key 写入密钥:   {app.write_key}",
        soft_wrap=True,
    )
    serve_with_store(s, host, port, store, state)
