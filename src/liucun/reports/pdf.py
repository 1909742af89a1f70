"""HTML to PDF through a headless Chromium (the same browser the dashboard is tested in), so
that the PDF's charts are the HTML's, drawn by ECharts."""

from __future__ import annotations

import shutil
from pathlib import Path

# where Debian's package puts it; the `chromium` setting names another
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


class PdfError(RuntimeError):
    """No PDF could be made; the message says what to install or set."""


def chromium_path(configured: str = "") -> str:
    """The Chromium to print with: `configured` (the `chromium` setting), else a usual
    install path."""
    if configured:
        if not Path(configured).exists():
            raise PdfError(f"LIUCUN_CHROMIUM={configured} does not exist")
        return configured
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    raise PdfError(
        "no Chromium to print the PDF with: install it (`apt-get install chromium`) or set "
        "LIUCUN_CHROMIUM to its path; the HTML report was written anyway"
    )


def write_pdf(html: str, path: Path, chromium: str = "", timeout_s: float = 60.0) -> None:
    """Print `html` (a self-contained page that sets `window.reportReady` once its charts
    are drawn) to an A4 PDF at `path`."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:  # a trimmed install without it still writes the HTML
        raise PdfError("the PDF needs the `playwright` package: pip install playwright") from exc
    executable = chromium_path(chromium)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=executable, headless=True, args=["--no-sandbox"]
            )
            try:
                # the width of A4 less its margins, so that charts are laid out as printed
                page = browser.new_page(viewport={"width": 720, "height": 1000})
                page.set_content(html, wait_until="load", timeout=timeout_s * 1000)
                page.wait_for_function("window.reportReady === true", timeout=timeout_s * 1000)
                page.pdf(
                    path=str(path),
                    format="A4",
                    print_background=True,
                    margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"},
                )
            finally:
                browser.close()
    except Error as exc:
        raise PdfError(f"Chromium ({executable}) could not print the report: {exc}") from exc
