"""The monthly report as one self-contained HTML file (ECharts inlined: it opens offline and
prints to PDF with its charts), in Chinese or English."""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import orjson

from liucun.reports.model import Kpi, MonthlyReport

LANGS = ("zh", "en")

LABELS: dict[str, dict[str, str]] = {
    "title": {"zh": "月度评估报告", "en": "Monthly evaluation"},
    "provisional": {
        "zh": "本月尚未结束,数字截至 {day}",
        "en": "The month is not over: figures up to {day}",
    },
    "kpis": {"zh": "核心指标", "en": "Key figures"},
    "metric": {"zh": "指标", "en": "Metric"},
    "this_month": {"zh": "本月", "en": "This month"},
    "last_month": {"zh": "上月", "en": "Last month"},
    "change": {"zh": "变化", "en": "Change"},
    "target": {"zh": "目标", "en": "Target"},
    "status": {"zh": "状态", "en": "Status"},
    "mau": {"zh": "月活跃用户(MAU)", "en": "Monthly active users (MAU)"},
    "mean_daily_uv": {"zh": "日均 UV", "en": "Mean daily UV"},
    "mau_to_daily_uv": {"zh": "MAU ÷ 日均 UV(倍)", "en": "MAU ÷ mean daily UV (×)"},
    "weekly_revisits": {"zh": "周均复访次数", "en": "Weekly average revisits"},
    "churn_rate": {"zh": "流失率", "en": "Churn rate"},
    "d1": {"zh": "次日留存(D1)", "en": "Day-1 retention"},
    "d7": {"zh": "7 日留存(D7)", "en": "Day-7 retention"},
    "d30": {"zh": "30 日留存(D30)", "en": "Day-30 retention"},
    "loads_within_2s": {"zh": "首屏 2 秒内占比", "en": "First screens within 2 s"},
    "ok": {"zh": "达标", "en": "on target"},
    "below": {"zh": "低于目标", "en": "below target"},
    "above": {"zh": "高于目标", "en": "above target"},
    "no data": {"zh": "无数据", "en": "no data"},
    "info": {"zh": "—", "en": "—"},
    "daily_uv": {"zh": "每日 UV:本月与上月", "en": "Daily UV: this month and last"},
    "day_of_month": {"zh": "日", "en": "Day"},
    "changes": {
        "zh": "变化在哪里:平台、场景与分群",
        "en": "Where it changed: platforms, scenes and segments",
    },
    "dimension": {"zh": "维度", "en": "Dimension"},
    "group": {"zh": "分组", "en": "Group"},
    "actives": {"zh": "活跃用户", "en": "Actives"},
    "platform": {"zh": "平台", "en": "Platform"},
    "scene": {"zh": "场景值", "en": "Scene"},
    "segment": {"zh": "分群(人数)", "en": "Segment (size)"},
    "pages": {"zh": "退出率最高的页面", "en": "Pages with the highest exit rates"},
    "page": {"zh": "页面", "en": "Page"},
    "sessions": {"zh": "会话", "en": "Sessions"},
    "exit_rate": {"zh": "退出率", "en": "Exit rate"},
    "campaigns": {"zh": "活动效果(对照组提升)", "en": "Campaigns: lift against holdout"},
    "campaign": {"zh": "活动", "en": "Campaign"},
    "lift": {"zh": "提升", "en": "Lift"},
    "ci": {"zh": "95% 置信区间", "en": "95% CI"},
    "no_campaigns": {"zh": "本月没有运行中的活动", "en": "No campaign ran this month"},
    "alerts": {"zh": "本月预警", "en": "Alerts of the month"},
    "no_alerts": {"zh": "本月没有预警", "en": "No alert this month"},
    "advice": {"zh": "建议的 playbook 调整", "en": "Recommended playbook adjustments"},
    "no_advice": {
        "zh": "各项指标达标,本月无需调整",
        "en": "Every figure is on target: nothing to adjust this month",
    },
    "none": {"zh": "(无)", "en": "(none)"},
}


def label(key: str, lang: str) -> str:
    return LABELS[key][lang]


def _number(value: float | None, key: str) -> str:
    if value is None:
        return "—"
    if key in ("churn_rate", "d1", "d7", "d30", "loads_within_2s"):
        return f"{value:.1%}"
    if key in ("mau",):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _change(kpi: Kpi) -> str:
    return "—" if kpi.change is None else f"{kpi.change:+.1%}"


@cache
def _echarts() -> str:
    vendor = resources.files("liucun.web").joinpath("static/vendor/echarts/echarts.min.js")
    return vendor.read_text("utf-8")


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("liucun.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("monthly.html.j2")


def _uv_chart(report: MonthlyReport, lang: str) -> dict[str, Any]:
    """Daily UV by day of month, this month beside the last."""
    days = max(len(report.daily_uv), len(report.previous_daily_uv))
    return {
        "animation": False,
        "legend": {"top": 0},
        "grid": {"left": 50, "right": 20, "top": 30, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(i + 1) for i in range(days)]},
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": label("this_month", lang),
                "type": "line",
                "data": [n for _, n in report.daily_uv],
            },
            {
                "name": label("last_month", lang),
                "type": "line",
                "lineStyle": {"type": "dashed"},
                "data": [n for _, n in report.previous_daily_uv],
            },
        ],
    }


def _changes_chart(report: MonthlyReport, lang: str) -> dict[str, Any]:
    rows = [c for c in report.changes if c.column == "platform"]
    return {
        "animation": False,
        "legend": {"top": 0},
        "grid": {"left": 50, "right": 20, "top": 30, "bottom": 30},
        "xAxis": {"type": "category", "data": [c.group or label("none", lang) for c in rows]},
        "yAxis": {"type": "value"},
        "series": [
            {"name": label("this_month", lang), "type": "bar", "data": [c.actives for c in rows]},
            {"name": label("last_month", lang), "type": "bar", "data": [c.previous for c in rows]},
        ],
    }


def _pages_chart(report: MonthlyReport, lang: str) -> dict[str, Any]:
    pages = list(reversed(report.pages))
    return {
        "animation": False,
        "grid": {"left": 160, "right": 40, "top": 10, "bottom": 30},
        "xAxis": {"type": "value", "max": 1, "axisLabel": {"formatter": "{value}"}},
        "yAxis": {"type": "category", "data": [p.page for p in pages]},
        "series": [
            {
                "name": label("exit_rate", lang),
                "type": "bar",
                "data": [round(p.exit_rate, 4) for p in pages],
            }
        ],
    }


def render_html(report: MonthlyReport, lang: str = "zh") -> str:
    """The report as a self-contained HTML page in `lang` (zh or en)."""
    if lang not in LANGS:
        raise ValueError(f"language {lang!r}: choose zh or en")
    charts = {
        "uv": _uv_chart(report, lang),
        "platforms": _changes_chart(report, lang),
        "pages": _pages_chart(report, lang),
    }
    return _template().render(
        r=report,
        lang=lang,
        t=lambda key: label(key, lang),
        number=_number,
        change=_change,
        month=f"{report.month:%Y-%m}",
        provisional=None
        if report.complete
        else label("provisional", lang).format(day=report.last_day.isoformat()),
        charts_json=orjson.dumps(charts).decode(),
        echarts=_echarts(),
        generated=date.today().isoformat(),
    )
