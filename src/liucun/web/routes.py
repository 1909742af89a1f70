"""The dashboard's pages: login, the app chooser, one page per topic, and its static files.

Thin by design: each page is a template with its panels; the scripts fetch the numbers from
the admin API (`/admin/v1/...`, authorised by the session cookie: web/session.py) and draw
them. Nothing here computes a metric. Pages are outside the OpenAPI document: they are HTML
for people, not API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from liucun import __version__
from liucun.state.apps import App, AppError
from liucun.web.auth import current_session, key_of, runtime_of, token_apps
from liucun.web.catalogue import LANGS, messages, pick_lang
from liucun.web.session import (
    CSRF_HEADER,
    LANG_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Session,
    csrf_ok,
    csrf_token,
    seal,
)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
BASE = "/dashboard"
PAGES = (
    "overview",
    "retention",
    "lifecycle",
    "funnels",
    "heatmap",
    "performance",
    "loyalty",
    "campaigns",
    "playbook",
)
MAX_FORM_BYTES = 16_384
# scripts and styles from this server only; ECharts sets inline style attributes
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)

router = APIRouter(include_in_schema=False)
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app`: its pages and, under /dashboard/static, its files."""
    app.include_router(router)
    app.mount(f"{BASE}/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")


def lang_of(request: Request) -> str:
    return pick_lang(request.cookies.get(LANG_COOKIE))


def render(
    request: Request, name: str, status: int = 200, session: Session | None = None, **ctx: Any
) -> HTMLResponse:
    ctx = {"app": None, "page": None, "apps": [], **ctx}
    lang = lang_of(request)
    texts = messages(lang)
    csrf = csrf_token(key_of(request), session) if session else ""
    config = {
        "lang": lang,
        "messages": texts,
        "csrf": csrf,
        "csrfHeader": CSRF_HEADER,
        "app": ctx["app"],
        "page": ctx["page"],
    }
    html = templates.get_template(name).render(
        t=texts,
        lang=lang,
        other_lang=LANGS[1 - LANGS.index(lang)],
        csrf=csrf,
        base=BASE,
        version=__version__,
        pages=PAGES,
        config_json=json.dumps(config, ensure_ascii=False).replace("</", "<\\/"),
        **ctx,
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path
    return RedirectResponse(f"{BASE}/login?next={target}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after login: a dashboard path only, never another site."""
    if value and value.startswith(f"{BASE}/") and not value.startswith("//"):
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc:
            return value
    return f"{BASE}/"


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (login CSRF)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(f"{BASE}/", status_code=307)


@router.get(BASE)
def dashboard_bare() -> RedirectResponse:
    return RedirectResponse(f"{BASE}/", status_code=307)


@router.get(f"{BASE}/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post(f"{BASE}/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    if not same_origin(request):
        return render(request, "login.html", 403, next=target, error="login.origin")
    token = form.get("token", "").strip()
    runtime = runtime_of(request)
    if not token or token_apps(runtime, token) is None:
        return render(request, "login.html", 401, next=target, error="login.wrong")
    cookie, _session = seal(key_of(request), token)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(f"{BASE}/logout")
async def logout(request: Request) -> Response:
    session = current_session(request)
    form = await read_form(request)
    if session is not None and not csrf_ok(key_of(request), session, form.get("csrf")):
        return Response("refused: the logout form lacks its CSRF token", status_code=403)
    response = RedirectResponse(f"{BASE}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get(f"{BASE}/")
def app_chooser(request: Request) -> Response:
    session = current_session(request)
    if session is None:
        return to_login(request)
    apps = token_apps(runtime_of(request), session.token)
    if apps is None:  # the token was rotated or the app deleted since the login
        return to_login(request)
    if len(apps) == 1:
        return RedirectResponse(f"{BASE}/{apps[0].name}/overview", status_code=303)
    return render(request, "apps.html", session=session, apps=apps)


def _app_json(app: App) -> dict[str, str]:
    return {"id": app.app_id, "name": app.name, "timezone": app.timezone}


@router.get(BASE + "/{app_ref}/{page}")
def dashboard_page(request: Request, app_ref: str, page: str) -> Response:
    session = current_session(request)
    if session is None:
        return to_login(request)
    runtime = runtime_of(request)
    if page not in PAGES:
        return render(request, "error.html", 404, session=session, message="unknown_app")
    try:
        found = runtime.app_for_admin(session.token, app_ref)
    except AppError:
        return render(request, "error.html", 404, session=session, message="unknown_app")
    if found is None:
        return render(request, "error.html", 403, session=session, message="forbidden")
    apps = token_apps(runtime, session.token) or [found]
    return render(
        request,
        f"{page}.html",
        session=session,
        app=_app_json(found),
        apps=[_app_json(a) for a in apps],
        page=page,
    )
