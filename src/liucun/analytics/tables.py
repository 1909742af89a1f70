"""Metric results (their JSON form) as titled tables, for the terminal and for CSV downloads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]]


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _active(data: dict[str, Any]) -> list[Table]:
    days = Table(
        "activity 活跃",
        ["day 日期", "DAU", "WAU", "MAU", "DAU/MAU", "PV", "visits 访问"],
        [
            [
                d["day"],
                d["dau"],
                d["wau"],
                d["mau"],
                f"{d['stickiness']:.1%}",
                d["page_views"],
                d["visits"],
            ]
            for d in data["days"]
        ],
    )
    months = Table(
        "calendar months 自然月",
        ["month 月份", "MAU", "whole month 整月"],
        [[m["month"][:7], m["mau"], "yes" if m["complete"] else "partial"] for m in data["months"]],
    )
    return [days, months]


def _mau_report(r: dict[str, Any]) -> list[Table]:
    rows = [
        ["month 月份", r["month"][:7] + ("" if r["complete"] else f" (to {r['last_day']})"), ""],
        ["MAU 月活", f"{r['mau']:,}", ""],
        ["mean daily UV 日均访客", _number(r["mean_daily_uv"], 1), ""],
        ["MAU ÷ daily UV 月活/日均", _number(r["mau_to_daily_uv"], 1), r["mau_ratio_status"]],
        ["weekly revisits 周均回访", _number(r["weekly_revisits"]), r["revisits_status"]],
        ["churn rate 流失率", _number(r["churn_rate"], 3), r["churn_status"]],
        [
            "last month's MAU / churned 上月活跃/流失",
            f"{r['previous_mau']:,} / {r['churned']:,}",
            "",
        ],
    ]
    return [Table("MAU report 月活报告", ["figure 指标", "value 数值", "vs target 对比目标"], rows)]


def _retention(cohorts: list[dict[str, Any]]) -> list[Table]:
    width = max((len(c["counts"]) for c in cohorts), default=1)
    rows = [
        [c["start"], c["size"], *[_share(n, c["size"]) for n in c["counts"][1:]]] for c in cohorts
    ]
    headers = ["cohort 同期群", "size 人数", *[f"+{k}" for k in range(1, width)]]
    return [Table("retention 留存", headers, rows)]


def _lifecycle(periods: list[dict[str, Any]]) -> list[Table]:
    headers = ["period 周期", "new 新增", "returning 回流", "resurrecting 召回", "dormant 沉睡"]
    rows = [
        [p["start"], p["new"], p["returning"], p["resurrecting"], p["dormant"]] for p in periods
    ]
    return [Table("lifecycle 生命周期", headers, rows)]


def _stickiness(buckets: list[dict[str, Any]]) -> list[Table]:
    rows = [[b["periods"], b["users"]] for b in buckets]
    return [Table("stickiness 粘性", ["periods active 活跃周期数", "users 用户"], rows)]


def _funnel_steps(title: str, steps: list[dict[str, Any]]) -> Table:
    headers = [
        "step 步骤",
        "event 事件",
        "users 用户",
        "overall 总转化",
        "from previous 步转化",
        "drop-off 流失",
        "median s 中位秒",
    ]
    rows = [
        [
            s["step"],
            s["event"],
            s["persons"],
            f"{s['conversion']:.1%}",
            f"{s['step_conversion']:.1%}",
            s["drop_off"],
            _number(s["median_seconds"], 1),
        ]
        for s in steps
    ]
    return Table(title, headers, rows)


def _funnel(data: list[dict[str, Any]]) -> list[Table]:
    if data and "steps" in data[0]:  # broken down: one table per value
        return [_funnel_steps(f"funnel 漏斗 · {g['value']}", g["steps"]) for g in data]
    return [_funnel_steps("funnel 漏斗", data)]


TABLES: dict[str, Callable[[Any], list[Table]]] = {
    "active": _active,
    "mau-report": _mau_report,
    "retention": _retention,
    "lifecycle": _lifecycle,
    "stickiness": _stickiness,
    "funnel": _funnel,
}


def metric_tables(kind: str, data: Any) -> list[Table]:
    """The tables that show metric `kind`'s JSON result `data`."""
    return TABLES[kind](data)
