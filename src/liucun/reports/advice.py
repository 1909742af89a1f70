"""The playbook adjustments a month's figures call for, by the seeds' rules (shared/seeds/000):

- weekly revisits under the target (2) → raise the monthly ladder's reward by the playbook's
  step (`report.ladder_step_yuan`), naming the step, its coupon and the new face value;
- churn over the target (50%) → look at the pages with the worst exit rates, named;
- MAU ÷ mean daily UV under the band (15–20×) → more reasons to come back within the month
  (the ladder's further steps, check-in thresholds);
- a promotion followed by a cliff in weekly actives (the `promotion_cliff` alert rule) → a
  long-term mechanism (points–levels–benefits, check-in, member day) instead of another one;
- loads over the first-screen target → the slowest pages, named.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from liucun.lifecycle.alerts import Context, promotion_cliff
from liucun.playbook.schema import Playbook
from liucun.reports.model import Advice, MonthlyReport
from liucun.state.apps import App
from liucun.warehouse.store import EventStore


def _ladder_advice(report: MonthlyReport, playbook: Playbook) -> Advice | None:
    kpi = report.kpi("weekly_revisits")
    if kpi.status != "below":
        return None
    step_yuan = playbook.report.ladder_step_yuan
    ladder = playbook.loyalty.ladder
    templates = {t.name: t for t in playbook.loyalty.coupons.templates}
    figures: dict[str, Any] = {
        "weekly_revisits": kpi.value,
        "min": playbook.alerts.weekly_revisits.min,
    }
    step = ladder.steps[0] if ladder.enabled and ladder.steps else None
    coupon = templates.get(step.reward.coupon or "") if step else None
    if step is None or coupon is None or coupon.yuan is None:
        return Advice(
            "weekly_revisits",
            figures,
            "周均复访低于目标:开启月活阶梯奖励(如“当月第 3 次访问领 8 元无门槛券”)",
            "Weekly revisits are under target: turn on the monthly ladder (e.g. an 8-yuan "
            "no-threshold coupon on the 3rd visit of the month)",
        )
    new = coupon.yuan + step_yuan
    figures |= {"visit": step.visit, "coupon": coupon.name, "yuan": coupon.yuan, "new_yuan": new}
    return Advice(
        "weekly_revisits",
        figures,
        f"周均复访 {kpi.value:.2f} 次,低于 {figures['min']:g} 次:升级福利力度,把月活阶梯第 "
        f"{step.visit} 次访问的券({coupon.name})从 {coupon.yuan:g} 元提高到 {new:g} 元"
        f"(playbook:loyalty.coupons.templates[{coupon.name}].yuan)",
        f"Weekly revisits are {kpi.value:.2f}, under {figures['min']:g}: raise incentives — "
        f"the ladder's coupon for visit {step.visit} ({coupon.name}) from {coupon.yuan:g} to "
        f"{new:g} yuan (playbook: loyalty.coupons.templates[{coupon.name}].yuan)",
    )


def _churn_advice(report: MonthlyReport, playbook: Playbook) -> Advice | None:
    kpi = report.kpi("churn_rate")
    limit = playbook.alerts.churn_rate.max
    if kpi.status != "above" or kpi.value is None:
        return None
    pages = [(p.page, p.exit_rate) for p in report.pages]
    named_zh = "、".join(f"{p}(退出率 {r:.0%})" for p, r in pages) or "(本月无足够会话的页面)"
    named_en = (
        ", ".join(f"{p} (exit rate {r:.0%})" for p, r in pages) or "(no page had enough sessions)"
    )
    return Advice(
        "churn_rate",
        {"churn_rate": kpi.value, "pages": pages},
        f"流失率 {kpi.value:.0%},超过 {limit:.0%}:排查功能与体验问题,"
        f"先看退出率最高的页面:{named_zh}",
        f"Churn is {kpi.value:.0%}, over {limit:.0%}: investigate features and experience, "
        f"starting with the pages users leave from most: {named_en}",
    )


def _ratio_advice(report: MonthlyReport) -> Advice | None:
    kpi = report.kpi("mau_to_daily_uv")
    if kpi.status != "below" or kpi.value is None:
        return None
    return Advice(
        "mau_to_daily_uv",
        {"mau_to_daily_uv": kpi.value, "band": kpi.target},
        f"MAU 仅为日均 UV 的 {kpi.value:.1f} 倍(目标 {kpi.target} 倍):用户当月回访太少,"
        "增加月内回访理由——阶梯奖励加第二档(如第 6 次访问)、签到满 3 次奖励",
        f"MAU is only {kpi.value:.1f}× mean daily UV (target {kpi.target}×): users come back "
        "too seldom within the month — add a second ladder step (e.g. the 6th visit) and a "
        "3-check-ins reward",
    )


def _cliff_advice(
    report: MonthlyReport, playbook: Playbook, store: EventStore, engine: sa.Engine, app: App
) -> Advice | None:
    rule = playbook.alerts.promotion_cliff
    if not rule.enabled or not rule.promotions:
        return None
    # the cliff rule looks back from the day it runs: run it on the month's last day
    fired = promotion_cliff(Context(store, engine, app, report.last_day, playbook))
    if not fired:
        return None
    names = sorted({str(a.figures.get("promotion", a.subject)) for a in fired})
    return Advice(
        "promotion_cliff",
        {"promotions": names},
        f"促销({'、'.join(names)})结束后周活跃断崖式下滑:不要再叠加短期活动,改为长效机制——"
        "积分—等级—权益闭环、签到、会员日",
        f"Weekly actives fell off a cliff after the promotion ({', '.join(names)}): instead of "
        "another short promotion, build a long-term mechanism — points, levels and benefits, "
        "check-ins, member day",
    )


def _load_advice(report: MonthlyReport, playbook: Playbook) -> Advice | None:
    kpi = report.kpi("loads_within_2s")
    want = playbook.alerts.first_screen_load.quantile
    if kpi.value is None or kpi.value >= want:
        return None
    return Advice(
        "first_screen_load",
        {"loads_within_2s": kpi.value, "target_share": want},
        f"仅 {kpi.value:.0%} 的首屏加载在 2 秒内(目标 {want:.0%}):预加载、图片懒加载、代码分包",
        f"Only {kpi.value:.0%} of first screens loaded within 2 s (target {want:.0%}): "
        "preloading, lazy images, code subpackages",
    )


def advise(
    report: MonthlyReport, playbook: Playbook, store: EventStore, engine: sa.Engine, app: App
) -> list[Advice]:
    """Every adjustment the month calls for (module docstring), in that order."""
    found = [
        _ladder_advice(report, playbook),
        _churn_advice(report, playbook),
        _ratio_advice(report),
        _cliff_advice(report, playbook, store, engine, app),
        _load_advice(report, playbook),
    ]
    return [a for a in found if a is not None]
