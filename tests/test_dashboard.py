"""The operator's dashboard in a real browser: Debian's Chromium driven by Playwright against a
real `liucun serve` holding a simulated app (the demo's simulation, small).

Each page is opened and each of its charts is checked to hold data (the ECharts instance's
series, not only the page loading); screenshots of every page are kept under the test's tmp
dir and copied to /tmp/dashboard_shots/ for people to look at.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from liucun.events.model import Platform
from liucun.loyalty.tokens import mint_user_token
from tests.server_helpers import ServerProcess, cli, liucun_env

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt install chromium)",
)
sync_api = pytest.importorskip("playwright.sync_api")

ADMIN = "dashboard-test-server-admin-token"
SHOTS = Path("/tmp/dashboard_shots")
USERS, DAYS = 800, 60
MEMBERS = 24

# page → the panels whose charts must hold data
PAGES: dict[str, tuple[str, ...]] = {
    "overview": ("dau", "mau", "ratio", "revisits", "churn"),
    "retention": ("curves", "matrix"),
    "lifecycle": ("buckets", "labels", "risk"),
    "funnels": ("funnel", "exits", "paths"),
    "heatmap": ("heatmap",),
    "performance": ("distribution", "curve", "platforms"),
    "loyalty": ("points", "levels", "checkins", "ladder", "coupons"),
    "campaigns": ("campaigns",),
    "playbook": (),
}

SERIES_POINTS = """(name) => {
  const el = document.querySelector(`[data-panel="${name}"] .chart`);
  const chart = el && echarts.getInstanceByDom(el);
  if (!chart) return -1;
  return Math.max(0, ...chart.getOption().series.map((s) => (s.data || []).length));
}"""


@dataclass
class Dashboard:
    url: str
    app_id: str
    tmp: Path
    campaign_lift: float  # the seeded campaign's relative conversion lift


def _api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120)


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def _seed_loyalty(url: str, app_id: str, write_key: str) -> None:
    """Members who visit, check in, earn and spend points and use coupons, through the API."""
    now = datetime.now(UTC)
    with _api(url) as admin, httpx.Client(base_url=url, timeout=60) as client:
        key = _ok(admin.post(f"/admin/v1/apps/{app_id}/loyalty/signing-keys"))
        events = []
        for i in range(MEMBERS):
            user = f"member-{i}"
            for d in range(i % 4 + 1):  # visits on 1–4 days this month climb the ladder
                ts = now - timedelta(minutes=5) if d == 0 else now - timedelta(days=d)
                if ts.month == now.month:
                    events.append(
                        {
                            "event_id": str(uuid.uuid4()),
                            "event": "app_open",
                            "user_id": user,
                            "ts": ts.isoformat(),
                        }
                    )
        _ok(
            client.post(
                "/v1/batch",
                json={"batch": events},
                headers={"Authorization": f"Bearer {write_key}"},
            )
        )
        for i in range(MEMBERS):
            user = f"member-{i}"
            token = mint_user_token(app_id, user, key["key_id"], key["secret"], now, 3600)
            bearer = {"Authorization": f"Bearer {token}"}
            _ok(client.post("/v1/loyalty/checkin", headers=bearer))
            _ok(
                admin.post(
                    f"/admin/v1/apps/{app_id}/loyalty/points/award",
                    json={"user_id": user, "points": 100 + 50 * i, "reason": "seed"},
                    headers={"Idempotency-Key": f"award-{i}"},
                )
            )
            if i % 2 == 0:  # spend 100 points for a 5-yuan coupon, and use every other one
                coupon = _ok(
                    client.post(
                        "/v1/loyalty/exchanges/points_5",
                        headers={**bearer, "Idempotency-Key": f"exchange-{i}"},
                    )
                )["coupon"]
                if i % 4 == 0:
                    _ok(
                        client.post(
                            f"/v1/loyalty/coupons/{coupon['coupon_id']}/redeem",
                            json={"order_id": f"order-{i}", "order_yuan": 60},
                            headers={**bearer, "Idempotency-Key": f"redeem-{i}"},
                        )
                    )


CAMPAIGN_USERS = 400


def _seed_campaign(url: str, app_id: str, write_key: str) -> float:
    """A banner campaign over listed users, run now; afterwards every other treated user and
    every fifth held-out one pays, so its results have a lift (about +150%) to draw. Returns
    that relative lift, from the counts."""
    from liucun.engage.holdout import arm_of, in_global_control

    users = [f"camp-{i}" for i in range(CAMPAIGN_USERS)]
    spec = {"name": "回归横幅", "target": {"kind": "users", "users": users}}
    spec["action"] = {"banner": {"text": "欢迎回来"}}
    with _api(url) as admin:
        base = f"/admin/v1/apps/{app_id}/campaigns"
        made = _ok(admin.post(base, json={"spec": spec}))
        cid = made["campaign_id"]
        _ok(admin.post(f"{base}/{cid}/launch"))
        _ok(admin.post(f"{base}/{cid}/run"))
    now = datetime.now(UTC) + timedelta(seconds=2)
    events = []
    seen = {"treatment": 0, "holdout": 0}
    paid = {"treatment": 0, "holdout": 0}
    for i, user in enumerate(users):
        if in_global_control(app_id, user, 0.05):
            continue  # in no campaign
        arm = arm_of(cid, user, 0.1)
        seen[arm] += 1
        # exactly every 2nd treated user pays, and every 5th held-out one: a +150% lift
        if seen[arm] % (2 if arm == "treatment" else 5) == 0:
            paid[arm] += 1
            events.append(
                {
                    "event_id": str(uuid.uuid4()),
                    "event": "order_paid",
                    "user_id": user,
                    "ts": now.isoformat(),
                    "amount": 30,
                    "properties": {"order_id": f"camp-order-{i}"},
                }
            )
    time.sleep(2.5)  # the orders come after the assignments, not in the same instant
    with httpx.Client(base_url=url, timeout=60) as client:
        _ok(
            client.post(
                "/v1/batch",
                json={"batch": events},
                headers={"Authorization": f"Bearer {write_key}"},
            )
        )
    rate = {arm: paid[arm] / seen[arm] for arm in seen}
    return rate["treatment"] / rate["holdout"] - 1


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    tmp = tmp_path_factory.mktemp("dashboard")
    env = liucun_env(tmp, LIUCUN_ADMIN_TOKEN=ADMIN, LIUCUN_INGEST_WORKERS="0")
    done = cli(env, "demo", "--no-serve", "--users", str(USERS), "--days", str(DAYS))
    assert done.returncode == 0, done.stderr
    server = ServerProcess(env).start()
    try:
        with _api(server.url) as admin:
            app = next(a for a in _ok(admin.get("/admin/v1/apps")) if a["name"] == "demo")
            app_id = app["app_id"]
            last = _ok(admin.get(f"/admin/v1/apps/{app_id}/metrics/mau-report"))["last_day"]
            first = (datetime.fromisoformat(last) - timedelta(days=29)).date().isoformat()
            base = f"/admin/v1/apps/{app_id}"
            _ok(admin.post(f"{base}/lifecycle/label", params={"from": first, "to": last}))
            _ok(admin.post(f"{base}/alerts/check"))
            _ok(admin.post(f"{base}/churn/train", json={"horizon_days": 14}))
            _ok(admin.post(f"{base}/churn/score", json={}))
        _seed_loyalty(server.url, app_id, app["write_key"])
        lift = _seed_campaign(server.url, app_id, app["write_key"])
        yield Dashboard(server.url, app_id, tmp, lift)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


def login(page: Any, url: str, token: str = ADMIN) -> None:
    page.goto(f"{url}/dashboard/")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/demo/overview$"))


def wait_drawn(page: Any, panel: str) -> int:
    """The data points in `panel`'s chart, once the panel has finished loading."""
    locator = page.locator(f'[data-panel="{panel}"]')
    locator.and_(page.locator("[data-state]")).wait_for(timeout=60_000)
    state = locator.get_attribute("data-state")
    status = locator.locator(".status").inner_text()
    assert state == "drawn", f"panel {panel}: {state} ({status})"
    points: int = page.evaluate(SERIES_POINTS, panel)
    return points


def shoot(page: Any, tmp: Path, name: str) -> None:
    path = tmp / "shots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def test_login_refuses_a_wrong_token_and_sets_a_strict_httponly_cookie(
    dashboard: Dashboard, page: Any
) -> None:
    page.goto(f"{dashboard.url}/dashboard/demo/overview")
    assert "/dashboard/login" in page.url
    page.fill("#token", "not-the-token")
    with page.expect_response(re.compile(r"/dashboard/login$")) as refused:
        page.click("#login-form button[type=submit]")
    assert refused.value.status == 401
    assert page.locator("#login-error").is_visible()
    assert not page.context.cookies()
    page.fill("#token", ADMIN)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/demo/overview$"))
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "liucun_session" and ADMIN not in cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # the API answers the cookie; a write without the page's CSRF header is refused
    status = page.evaluate(
        """async (app) => [
          (await fetch(`/admin/v1/apps/${app}/alerts`)).status,
          (await fetch(`/admin/v1/apps/${app}/alerts/check`, {method: "POST"})).status,
        ]""",
        dashboard.app_id,
    )
    assert status == [200, 403]


def test_every_page_draws_its_charts_with_data(dashboard: Dashboard, page: Any) -> None:
    login(page, dashboard.url)
    for name, panels in PAGES.items():
        page.goto(f"{dashboard.url}/dashboard/demo/{name}")
        for panel in panels:
            assert wait_drawn(page, panel) > 0, f"{name}: chart {panel} has no data"
        if name == "overview":
            page.locator('[data-kpi="月活 MAU"]').wait_for()
            page.locator("#kpis-retention .kpi").first.wait_for()
            page.locator("#alerts[data-state=drawn]").wait_for()
            assert page.locator("#alert-list article.alert").count() > 0  # seeded alerts
            assert "建议动作" in page.locator("#alert-list").inner_text()
        if name == "lifecycle":
            page.locator("#users[data-rows]").wait_for()
            assert int(page.locator("#users").get_attribute("data-rows") or 0) > 0
        if name == "campaigns":
            # the seeded campaign's lift, as its orders were made, inside its interval
            lift = page.evaluate(
                """() => echarts.getInstanceByDom(
                     document.querySelector('[data-panel="campaigns"] .chart'))
                     .getOption().series.map((s) => s.data[0])"""
            )
            assert lift[0] == pytest.approx(dashboard.campaign_lift), lift
            assert lift[1] < lift[0] < lift[2], lift
        if name == "playbook":
            page.wait_for_function("() => document.querySelector('#pb-text').value.length > 100")
        page.wait_for_timeout(300)  # let the last chart finish painting
        shoot(page, dashboard.tmp, name)


def test_numbers_are_one_click_away(dashboard: Dashboard, page: Any) -> None:
    login(page, dashboard.url)
    wait_drawn(page, "dau")
    panel = page.locator('[data-panel="dau"]')
    panel.get_by_role("button", name="查看数据").click()
    assert panel.locator("table.numbers tbody tr").count() == 30
    with page.expect_download() as download:
        panel.get_by_role("button", name="下载 CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "日期,本期,日期,上期" and len(text.splitlines()) == 31


def test_language_switch_sticks_after_reload(dashboard: Dashboard, page: Any) -> None:
    login(page, dashboard.url)
    assert page.locator("nav.pages a.current").inner_text() == "总览"
    page.click("#lang-switch")
    page.wait_for_load_state()
    page.locator("nav.pages a.current", has_text="Overview").wait_for()
    page.reload()
    assert page.locator("nav.pages a.current").inner_text() == "Overview"
    assert page.locator("html").get_attribute("lang") == "en"
    wait_drawn(page, "dau")
    shoot(page, dashboard.tmp, "overview-en")


def test_build_a_funnel(dashboard: Dashboard, page: Any) -> None:
    login(page, dashboard.url)
    page.goto(f"{dashboard.url}/dashboard/demo/funnels")
    wait_drawn(page, "funnel")
    steps = page.locator("#steps input.step")
    while steps.count() > 2:
        page.locator("#steps li").last.get_by_role("button").click()
    steps.nth(0).fill("app_open")
    steps.nth(1).fill("page_view[page=pages/goods/detail]")
    page.click("#add-step")
    steps.nth(2).fill("order_paid")
    page.select_option("#f-window", "7d")
    with page.expect_response(re.compile(r"/metrics/funnel\?")) as answered:
        page.click("#build")
    assert answered.value.status == 200
    steps_json = answered.value.json()
    assert [s["event"] for s in steps_json] == [
        "app_open",
        "page_view[page=pages/goods/detail]",
        "order_paid",
    ]
    assert wait_drawn(page, "funnel") == 3
    drawn = page.evaluate(
        """() => echarts.getInstanceByDom(document.querySelector('[data-panel="funnel"] .chart'))
                 .getOption().series[0].data"""
    )
    assert drawn == [s["persons"] for s in steps_json]
    assert drawn[0] >= drawn[1] >= drawn[2] > 0
    shoot(page, dashboard.tmp, "funnels-built")
    # broken down by platform: a conversion line per group, the API's conversions drawn
    page.select_option("#f-breakdown", "platform")
    assert page.locator("#f-property-label").is_hidden()
    with page.expect_response(re.compile(r"/metrics/funnel\?.*breakdown=platform")) as split:
        page.click("#build")
    groups = split.value.json()
    assert len(groups) >= 2 and all(len(g["steps"]) == 3 for g in groups)
    assert sum(g["steps"][0]["persons"] for g in groups) == drawn[0]
    page.wait_for_function(
        """(n) => { const c = echarts.getInstanceByDom(
             document.querySelector('[data-panel="funnel"] .chart'));
           return c && c.getOption().series.length === n; }""",
        arg=len(groups),
    )
    series = page.evaluate(
        """() => echarts.getInstanceByDom(document.querySelector('[data-panel="funnel"] .chart'))
                 .getOption().series"""
    )
    assert [s["name"] for s in series] == [g["value"] or "(无值)" for g in groups]
    assert [s["data"] for s in series] == [[x["conversion"] for x in g["steps"]] for g in groups]
    shoot(page, dashboard.tmp, "funnels-by-platform")


def test_retention_broken_down_by_platform(dashboard: Dashboard, page: Any) -> None:
    """The breakdown switch asks the API for platform groups, draws one curve per group and
    the chosen group's matrix; the curve's points are the pooled rates of the API's cohorts."""
    login(page, dashboard.url)
    page.goto(f"{dashboard.url}/dashboard/demo/retention")
    wait_drawn(page, "matrix")
    with page.expect_response(re.compile(r"/metrics/retention\?.*breakdown=platform")) as got:
        page.select_option("#r-breakdown", "platform")
    groups = got.value.json()
    # the seeded members' visits carry no platform: the "(no value)" group
    assert len(groups) >= 2 and {g["value"] for g in groups} <= {*get_args(Platform), None}
    wait_drawn(page, "curves")
    wait_drawn(page, "matrix")
    chart = """(name) => echarts.getInstanceByDom(
        document.querySelector(`[data-panel="${name}"] .chart`)).getOption().series"""
    assert page.locator("#r-property-label").is_hidden()  # only for an event property
    series = page.evaluate(chart, "curves")
    assert [s["name"] for s in series] == [g["value"] or "(无值)" for g in groups]
    first = groups[0]["cohorts"]  # D1 pooled over the cohorts old enough for it
    old = [c for c in first if len(c["counts"]) > 1]
    d1 = sum(c["counts"][1] for c in old) / sum(c["size"] for c in old)
    assert series[0]["data"][0] == pytest.approx(d1)
    # the matrix shows the first group; picking the second redraws it from that group
    options = page.locator("#r-group option")
    assert options.count() == len(groups)
    page.select_option("#r-group", "1")
    page.wait_for_function(
        """(size) => { const c = echarts.getInstanceByDom(
             document.querySelector('[data-panel="matrix"] .chart'));
           return c && c.getOption().yAxis[0].data[0].endsWith(`(${size})`); }""",
        arg=f"{groups[1]['cohorts'][0]['size']:,}",
    )
    shoot(page, dashboard.tmp, "retention-platform")


def test_retention_broken_down_by_a_profile_attribute(dashboard: Dashboard, page: Any) -> None:
    """Two members get a `tier` by import; choosing "profile attribute" and typing its name
    asks for `profile.tier` and draws a curve per tier, the unprofiled persons included."""
    with _api(dashboard.url) as admin:
        rows = [
            {"user_id": "member-0", "attributes": {"tier": "金卡"}},
            {"user_id": "member-1", "attributes": {"tier": "银卡"}},
        ]
        path = f"/admin/v1/apps/{dashboard.app_id}/profiles/import"
        assert _ok(admin.post(path, json={"users": rows}))["accepted"] == 2
    login(page, dashboard.url)
    page.goto(f"{dashboard.url}/dashboard/demo/retention")
    wait_drawn(page, "matrix")
    page.select_option("#r-breakdown", "profile")
    assert page.locator("#r-prefix").inner_text() == "profile."
    with page.expect_response(re.compile(r"/metrics/retention\?.*breakdown=profile\.tier")) as got:
        page.fill("#r-property", "tier")
        page.dispatch_event("#r-property", "change")
    groups = got.value.json()
    assert {g["value"] for g in groups} == {None, "金卡", "银卡"}
    wait_drawn(page, "curves")
    series = page.evaluate(
        """() => echarts.getInstanceByDom(
            document.querySelector('[data-panel="curves"] .chart')).getOption().series"""
    )
    assert [s["name"] for s in series] == [g["value"] or "(无值)" for g in groups]


def edit_value(page: Any, start: int, end: int, typed: str) -> None:
    """Select characters `start`..`end` of the playbook editor and type over them, as an
    operator does (the YAML is BMP-only, so Python and JavaScript indices agree)."""
    page.eval_on_selector(
        "#pb-text", "(el, [a, b]) => { el.focus(); el.setSelectionRange(a, b); }", [start, end]
    )
    page.keyboard.type(typed)


def test_playbook_invalid_value_shows_in_place_then_a_valid_one_saves(
    dashboard: Dashboard, page: Any
) -> None:
    login(page, dashboard.url)
    page.goto(f"{dashboard.url}/dashboard/demo/playbook")
    page.wait_for_function("() => document.querySelector('#pb-text').value.length > 100")
    text = page.input_value("#pb-text")
    match = re.search(r"^( *high_risk: )([0-9.]+)", text, re.M)
    assert match, "the default playbook sets risk.high_risk"
    line = text[: match.start()].count("\n") + 1
    edit_value(page, match.start(2), match.end(2), "7")
    page.click("#pb-validate")
    problems = page.locator("#pb-problems")
    problems.wait_for()
    assert "high_risk" in problems.inner_text()
    assert page.locator(f'#pb-problems li[data-line="{line}"]').count() == 1
    assert page.locator("#pb-gutter div.bad").inner_text() == str(line)
    assert page.locator("#pb-save").is_disabled()
    shoot(page, dashboard.tmp, "playbook-invalid")

    edit_value(page, match.start(2), match.start(2) + 1, "0.65")
    page.click("#pb-dry-run")
    page.locator('[data-panel="pb-labels"][data-state="drawn"]').wait_for(timeout=60_000)
    assert wait_drawn(page, "pb-labels") == 5
    assert "risk.high_risk" in page.locator("#pb-result").inner_text()
    assert page.locator("#pb-problems").is_hidden()
    page.fill("#pb-note", "high risk from 0.65")
    page.click("#pb-save")
    page.locator("#pb-result [data-saved]").wait_for()
    shoot(page, dashboard.tmp, "playbook-saved")
    with _api(dashboard.url) as admin:
        live = _ok(admin.get(f"/admin/v1/apps/{dashboard.app_id}/playbook"))
    assert live["revision"] == 1 and live["playbook"]["risk"]["high_risk"] == 0.65
