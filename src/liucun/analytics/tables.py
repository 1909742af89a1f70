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


def _cohort_table(title: str, cohorts: list[dict[str, Any]]) -> Table:
    width = max((len(c["counts"]) for c in cohorts), default=1)
    rows = [
        [c["start"], c["size"], *[_share(n, c["size"]) for n in c["counts"][1:]]] for c in cohorts
    ]
    headers = ["cohort 同期群", "size 人数", *[f"+{k}" for k in range(1, width)]]
    return Table(title, headers, rows)


def _group_name(value: Any) -> str:
    return "(无值 no value)" if value is None else str(value)


def _retention(data: list[dict[str, Any]]) -> list[Table]:
    if data and "cohorts" in data[0]:  # broken down: one table per value
        return [
            _cohort_table(f"retention 留存 · {_group_name(g['value'])}", g["cohorts"]) for g in data
        ]
    return [_cohort_table("retention 留存", data)]


def _day_retention(days: list[dict[str, Any]]) -> list[Table]:
    rows = [
        [
            f"D{d['day']}",
            "–" if d["rate"] is None else f"{d['rate']:.1%}",
            d["retained"],
            d["cohort_users"],
            d["cohorts"],
        ]
        for d in days
    ]
    headers = ["day 天", "retained 留存率", "returned 回访", "cohort users 同期群人数", "cohorts"]
    return [Table("D1/D7/D30 retention 留存", headers, rows)]


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
        return [_funnel_steps(f"funnel 漏斗 · {_group_name(g['value'])}", g["steps"]) for g in data]
    return [_funnel_steps("funnel 漏斗", data)]


def _exits(pages: list[dict[str, Any]]) -> list[Table]:
    rows = [
        [p["page"], p["views"], p["sessions"], p["exits"], f"{p['exit_rate']:.1%}"] for p in pages
    ]
    return [
        Table(
            "exit pages 退出页",
            ["页面 page", "浏览 views", "会话 sessions", "退出 exits", "退出率 exit rate"],
            rows,
        )
    ]


def _paths(links: list[dict[str, Any]]) -> list[Table]:
    rows = [[link["source"], link["target"], link["sessions"]] for link in links]
    return [Table("paths 路径", ["从 from", "到 to", "会话 sessions"], rows)]


def _features(uses: list[dict[str, Any]]) -> list[Table]:
    rows = [
        [
            u["period"],
            u["kind"],
            u["feature"],
            u["uses"],
            u["users"],
            _number(u["uses_per_active_user"]),
        ]
        for u in uses
    ]
    return [
        Table(
            "feature use 功能使用",
            [
                "周期 period",
                "类型 kind",
                "功能 feature",
                "次数 uses",
                "用户 users",
                "人均 per active",
            ],
            rows,
        )
    ]


def _dwell(pages: list[dict[str, Any]]) -> list[Table]:
    rows = [
        [
            p["page"],
            p["leaves"],
            _number(p["mean_seconds"], 1),
            _number(p["median_seconds"], 1),
            _number(p["p90_seconds"], 1),
        ]
        for p in pages
    ]
    return [
        Table(
            "dwell 停留时长 (s)",
            ["页面 page", "次数 leaves", "平均 mean", "中位 median", "P90"],
            rows,
        )
    ]


def _heatmap(h: dict[str, Any]) -> list[Table]:
    rows = [[i, *row] for i, row in enumerate(h["cells"])]
    title = f"taps 点击热力图 {h['page']} ({h['taps']:,} taps, {h['skipped']:,} without screen)"
    return [Table(title, ["row", *[str(c) for c in range(h["columns"])]], rows)]


def _performance(p: dict[str, Any]) -> list[Table]:
    def stats(title: str, groups: list[dict[str, Any]]) -> Table:
        rows = [
            [
                g["group"] or "–",
                g["loads"],
                _number(g["median_ms"], 0),
                _number(g["p90_ms"], 0),
                f"{g['within_target']:.1%}",
            ]
            for g in groups
        ]
        return Table(
            title, ["group", "loads 次数", "median ms", "P90 ms", f"≤ {p['target_ms']} ms"], rows
        )

    back = [
        [
            f"{b['low_s']}–{b['high_s']} s" if b["high_s"] else f"≥ {b['low_s']} s",
            b["visit_days"],
            b["not_returned"],
            f"{b['rate']:.1%}",
            f"{b['ci_low']:.1%}–{b['ci_high']:.1%}",
        ]
        for b in p["load_and_return"]
    ]
    return [
        stats("first-screen load 首屏加载", [p["overall"]]),
        stats("by platform 按平台", p["by_platform"]),
        stats("by page 按页面", p["by_page"]),
        Table(
            "load vs. no return in 7 days 加载时长与7日未回访",
            ["load 加载", "visit-days", "not back 未回访", "rate 比例", "95% CI"],
            back,
        ),
    ]


TABLES: dict[str, Callable[[Any], list[Table]]] = {
    "active": _active,
    "mau-report": _mau_report,
    "retention": _retention,
    "day-retention": _day_retention,
    "lifecycle": _lifecycle,
    "stickiness": _stickiness,
    "funnel": _funnel,
    "exits": _exits,
    "paths": _paths,
    "features": _features,
    "dwell": _dwell,
    "heatmap": _heatmap,
    "performance": _performance,
}


def metric_tables(kind: str, data: Any) -> list[Table]:
    """The tables that show metric `kind`'s JSON result `data`."""
    return TABLES[kind](data)
