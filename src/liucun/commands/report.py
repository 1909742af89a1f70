"""`liucun report`: the monthly evaluation report as HTML and PDF (docs/report.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liucun import console
from liucun.commands.common import AppOption, JsonOption, resolve_app, settings

STATUS = {"ok": "达标 ok", "below": "低于 below", "above": "高于 above", "no data": "无数据"}


def report_command(
    app_ref: AppOption,
    month: Annotated[str, typer.Option(help="The app-local month to evaluate, YYYY-MM.")],
    out: Annotated[
        Path, typer.Option(help="Folder to write report-<app>-<month>.html and .pdf into.")
    ] = Path("."),
    lang: Annotated[str, typer.Option(help="zh (default) or en.")] = "zh",
    pdf: Annotated[bool, typer.Option(help="Also print a PDF (needs Chromium).")] = True,
    as_json: JsonOption = False,
) -> None:
    """The monthly evaluation 月度评估: KPIs against targets and last month, where it
    changed, campaigns' lift, alerts, and recommended playbook adjustments."""
    from liucun.local import monthly_report_files
    from liucun.reports.model import ReportError
    from liucun.reports.pdf import PdfError, write_pdf

    if lang not in ("zh", "en"):
        console.fail(f"--lang {lang!r}: choose zh or en", code=2)
    s = settings()
    found = resolve_app(s, app_ref)
    try:
        data, html = monthly_report_files(s, found, month, lang)
    except ReportError as exc:
        console.fail(str(exc), code=2)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"report-{found.name}-{month}"
    html_path = stem.with_suffix(".html")
    html_path.write_text(html, encoding="utf-8")
    files = {"html": str(html_path), "pdf": None}
    if pdf:
        try:
            with console.err.status("正在生成 PDF printing the PDF…"):
                write_pdf(html, stem.with_suffix(".pdf"), s.chromium)
            files["pdf"] = str(stem.with_suffix(".pdf"))
        except PdfError as exc:
            console.err.print(f"[yellow]{exc}[/]")
    if as_json:
        console.print_json({**data, "files": files})
        return
    rows = [
        [
            k["key"],
            _fmt(k["value"]),
            _fmt(k["previous"]),
            k["target"] or "—",
            STATUS.get(k["status"], "—"),
        ]
        for k in data["kpis"]
    ]
    title = f"{found.name} {month} 月度评估 monthly evaluation"
    console.print_table(title, ["指标 KPI", "本月", "上月", "目标", "状态"], rows)
    for a in data["advice"]:
        console.out.print(f"• {a['zh']}\n  {a['en']}")
    console.out.print(
        f"HTML: {files['html']}" + (f"\nPDF:  {files['pdf']}" if files["pdf"] else "")
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}".rstrip("0").rstrip(".")
