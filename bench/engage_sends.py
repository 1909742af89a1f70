"""Send-decision speed: one campaign's messages to 100 000 users, decided in bulk.

    python bench/engage_sends.py [--users 100000] [--runs 3] [--state URL]

One app (Asia/Shanghai) with a WeChat account; of its users 70% accepted the win-back
template 1–3 times (credits), 10% used their credit up, 5% always-rejected it, 15% never
answered; 20% already had a message today (the day's cap, 1, is taken). Each run decides a
`winback_coupon` message for every user with `plan_sends` — consent, the global-control check,
the day and month caps and the quiet hours, credits and cap slots taken atomically, every
decision recorded — on a fresh day (so each run does the full work), once at noon and once at
23:00 (held until 08:00). Prints the median wall-clock seconds of `--runs` runs, the median CPU
seconds of this process (the database's own work on PostgreSQL is not in it; on a busy machine
the wall clock includes waiting for a core) and the decisions per status; asserts nothing.
The goal: under 10 s for 100 000 users.

The state store is a fresh SQLite file (default) or the PostgreSQL database `--state` names
(its engage tables are emptied first).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from liucun.engage.caps import upsert
from liucun.engage.channels.accounts import set_account
from liucun.engage.sending import SendRequest, plan_sends
from liucun.playbook.messages import ChannelTemplate, MessageRules, ScenarioTemplate
from liucun.state.apps import create_app, find_app
from liucun.state.db import open_state
from liucun.state.tables import engage_cap_counts, engage_subscriptions

TEMPLATE = "tmpl-winback"
START = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)  # 12:00 local, a Monday


def bench_rules() -> MessageRules:
    shipped = MessageRules()
    winback = shipped.templates["winback_coupon"]
    channel = ChannelTemplate(
        channel="wechat", template_id=TEMPLATE, fields=winback.channels[0].fields
    )
    templates = {**shipped.templates, "winback_coupon": ScenarioTemplate(
        zh=winback.zh, en=winback.en, page=winback.page, channels=[channel]
    )}  # fmt: skip
    return MessageRules(templates=templates)


def populate(engine: sa.Engine, app_id: str, users: int, rng: random.Random) -> None:
    """The users' subscriptions, written in bulk (not timed)."""
    subs = []
    for i in range(users):
        user, draw = f"user-{i:07d}", rng.random()
        if draw < 0.85:
            credits = rng.randint(1, 3) if draw < 0.70 else 0
            status = "always_rejected" if draw >= 0.80 else "accepted"
            subs.append({
                "app_id": app_id, "user_id": user, "channel": "wechat", "template_id": TEMPLATE,
                "credits": credits, "long_term": False, "status": status, "accepted": 1,
                "recipient": None, "updated_at": START,
            })  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(subs), 20_000):
            upsert(conn, engage_subscriptions, subs[start : start + 20_000], ["credits"])


def day_caps(engine: sa.Engine, app_id: str, users: int, day: datetime, rng: random.Random) -> None:
    local = (day + timedelta(hours=8)).strftime("%Y-%m-%d")
    rows = [
        {"app_id": app_id, "user_id": f"user-{i:07d}", "period": local, "used": 1}
        for i in range(users)
        if rng.random() < 0.2
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            upsert(conn, engage_cap_counts, rows[start : start + 20_000], ["used"])


def send_decision_bench(users: int, runs: int = 3, state: str | None = None) -> dict[str, float]:
    """Median seconds to decide a message for each of `users` users (noon and 23:00 runs)."""
    tmp = tempfile.mkdtemp()
    url = state or f"sqlite:///{Path(tmp) / 'state.sqlite'}"
    engine = open_state(url)
    # an app of its own: a shared state store's other apps are left alone
    name = f"bench-{int(time.time())}"
    app = find_app(engine, create_app(engine, name, "Asia/Shanghai").app_id)
    set_account(engine, app.app_id, "wechat", {"appid": "wx"}, {"secret": "s"}, START)
    rng = random.Random(1)
    populate(engine, app.app_id, users, rng)
    rules = bench_rules()
    figures: dict[str, float] = {}
    for label, hour in (("noon", 0), ("23:00 (held)", 11)):
        times, cpus, counts = [], [], Counter[str]()
        for run in range(runs):
            now = START + timedelta(days=2 * run + (0 if hour == 0 else 20), hours=hour)
            day_caps(engine, app.app_id, users, now + timedelta(hours=12 if hour else 0), rng)
            requests = [
                SendRequest(f"user-{i:07d}", "winback_coupon", f"{label}-{run}-{i}", "camp",
                            {"coupon_name": "20 元无门槛券"})
                for i in range(users)
            ]  # fmt: skip
            started, cpu = time.perf_counter(), time.process_time()
            decisions = plan_sends(engine, app, rules, requests, now)
            times.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            counts = Counter(d.reason or d.status for d in decisions)
        figures[label] = statistics.median(times)
        cpu = statistics.median(cpus)
        print(
            f"{label:>13}: {users:,} users, median {figures[label]:.2f} s of {runs} runs "
            f"({min(times):.2f}–{max(times):.2f}; this process's CPU: median {cpu:.2f} s); "
            f"last run: {dict(sorted(counts.items()))}"
        )
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--state", default=None, help="state store URL (default: SQLite)")
    args = parser.parse_args()
    print(f"send decisions ({args.state or 'SQLite'}):")
    send_decision_bench(args.users, args.runs, args.state)


if __name__ == "__main__":
    main()
