"""Early warning: each alert rule on data built to cross its threshold and on data built to
stay just on the other side, against plain-Python references written from the definitions
(docs/alerts.md); storing each alert once; webhook delivery to a real local HTTP server;
the CLI and the admin API.

Asia/Shanghai is UTC+8: 02:00Z is 10:00 local on the same date, 16:00Z is local midnight of
the next date.
"""

from __future__ import annotations

import functools
import json
import random
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liucun.api.app import create_app
from liucun.cli import app as cli_app
from liucun.config import Settings
from liucun.events.batch import validate_events
from liucun.lifecycle.alert_store import (
    attempts_of,
    get_alert,
    list_alerts,
    store_alerts,
)
from liucun.lifecycle.alerts import RULES, Alert, check_alerts
from liucun.lifecycle.webhook import deliver_pending
from liucun.local import open_events
from liucun.playbook.alerts import AlertRules, Webhook
from liucun.playbook.load import default_playbook, default_text, parse_playbook
from liucun.playbook.schema import Playbook
from liucun.playbook.store import apply_playbook
from liucun.state.apps import App, AppCredentials
from liucun.state.apps import create_app as create_tenant
from liucun.state.db import open_state
from liucun.state.tables import alerts as alerts_table
from liucun.state.tables import churn_scores
from liucun.warehouse.store import EventStore
from tests.reference_stores import APP, ENGINES, events_store

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
SHOP = App(APP, "shop", TZ, "wk_test")


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    event: str
    ts: datetime
    anon: str
    user: str | None = None
    load_ms: int | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def raw(self) -> dict[str, Any]:
        e: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "anonymous_id": self.anon,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.user is not None:
            e["user_id"] = self.user
        if self.load_ms is not None:
            e["load_ms"] = self.load_ms
            e["page"] = "pages/home"
        return e

    @property
    def local_day(self) -> date:
        return self.ts.astimezone(ZONE).date()


def at(day: date, hour: int = 2, minute: int = 0, second: int = 0) -> datetime:
    """A UTC instant on `day` (a UTC date): 02:00Z is 10:00 in Shanghai."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def visit(who: str, day: date, minute: int = 0) -> Ev:
    return Ev("app_open", at(day, minute=minute), who)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


StoreFactory = Callable[[Sequence[Sequence[Ev]], str], AbstractContextManager[EventStore]]


@pytest.fixture(params=ENGINES)
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    return functools.partial(events_store, request.param)


def playbook(**alerts: Any) -> Playbook:
    """The default playbook with only the named rules enabled (and their settings)."""
    section: dict[str, Any] = {k: {"enabled": False} for k in RULES}
    for key, value in alerts.items():
        section[key] = {"enabled": True, **value} if key in RULES else value
    return Playbook.model_validate({**default_playbook().model_dump(), "alerts": section})


def check(store: EventStore, as_of: date, pb: Playbook) -> list[Alert]:
    return check_alerts(store, None, SHOP, as_of, pb)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- defaults


def test_default_playbook_holds_the_seeds_figures() -> None:
    shipped = parse_playbook(default_text()).alerts
    assert shipped == AlertRules()  # the YAML and the model's defaults agree
    assert shipped.weekly_revisits.min == 2.0  # seeds 000: weekly revisits < 2
    assert shipped.churn_rate.max == 0.5  # seeds 000: churn > 50%
    assert shipped.first_screen_load.max_ms == 2000  # seeds 000: first screen within 2 s
    assert shipped.webhook.url is None
    with pytest.raises(ValueError, match="ends"):
        playbook(
            promotion_cliff={
                "promotions": [{"name": "x", "start": "2026-11-02", "end": "2026-11-01"}]
            }
        )
    with pytest.raises(ValueError, match="min_active_weeks"):
        playbook(loyal_halved={"min_active_weeks": 9})


# --------------------------------------------------------------------------- weekly revisits


def ref_weekly_revisits(events: list[Ev], as_of: date) -> float | None:
    """Visits after a person's first in the week, per active person-week, over the complete
    Monday weeks that start in as_of's month and end by as_of."""
    month = as_of.replace(day=1)
    visits: dict[tuple[str, date], int] = defaultdict(int)
    for e in events:
        day = e.local_day
        week = day - timedelta(days=day.weekday())
        in_month = week >= month and week.month == month.month
        if e.event == "app_open" and in_month and week + timedelta(days=6) <= as_of:
            visits[(e.anon, week)] += 1
    if not visits:
        return None
    return sum(v - 1 for v in visits.values()) / len(visits)


def revisit_events(short: bool) -> list[Ev]:
    """Ten persons, three visits in each of the two weeks of Nov 2–15 (2 revisits a week; p2's
    third in the second week at 23:59:59 local on the 15th); with `short`, one person-week has
    a visit fewer: 39 revisits over 20 person-weeks."""
    out = []
    for p in range(10):
        for week in (date(2026, 11, 2), date(2026, 11, 9)):
            n = 2 if ((short and p == 0) or p == 2) and week.day == 9 else 3
            out += [visit(f"p{p}", week + timedelta(days=i * 2), minute=i) for i in range(n)]
    out += [Ev("app_open", utc("2026-11-15T15:59:59Z"), "p2")]
    # the week of Oct 26 starts in October; the week of Nov 16 is not over on the 15th
    out += [visit("p1", date(2026, 11, 1)), visit("early", date(2026, 11, 1))]
    out += [Ev("app_open", utc("2026-11-15T16:00:00Z"), "late")]  # 00:00 on the 16th
    return out


@pytest.mark.parametrize("short", [True, False])
def test_weekly_revisits(make_store: StoreFactory, short: bool) -> None:
    events = revisit_events(short)
    expected = ref_weekly_revisits(events, date(2026, 11, 15))
    assert expected == (1.95 if short else 2.0)
    with make_store([events], TZ) as store:
        fired = check(store, date(2026, 11, 15), playbook(weekly_revisits={}))
    if not short:
        assert fired == []  # exactly 2.0 is not below 2
        return
    (alert,) = fired
    assert (alert.kind, alert.scope, alert.subject, alert.period) == (
        "weekly_revisits",
        "app",
        "",
        "2026-11",
    )
    assert alert.figures["weekly_revisits"] == expected
    assert alert.figures["threshold"] == 2.0 and alert.figures["weeks"] == 2
    assert alert.severity == "warning" and "福利" in alert.action_zh


# --------------------------------------------------------------------------- churn rate


def churn_events(back_in_october: int) -> list[Ev]:
    """Ten persons visit in September; `back_in_october` of them in October, with two new
    persons; in November (in progress) only one new person has come."""
    out = [visit(f"s{i}", date(2026, 9, 5 + i)) for i in range(10)]
    for i in range(back_in_october):
        # s0 comes back at local midnight of October 1st (16:00Z on the 30th)
        out.append(
            Ev("app_open", utc("2026-09-30T16:00:00Z"), "s0")
            if i == 0
            else visit(f"s{i}", date(2026, 10, 10 + i))
        )
    out += [visit("n0", date(2026, 10, 20)), visit("n1", date(2026, 10, 21))]
    # 00:00 on November 1st local: a November visit, not an October one
    out.append(Ev("app_open", utc("2026-10-31T16:00:00Z"), f"s{back_in_october}"))
    out.append(visit("n2", date(2026, 11, 3)))
    return out


def ref_churn(events: list[Ev], month: date) -> tuple[int, int, int]:
    """(churned, previous month's actives, this month's actives)."""
    previous = (month - timedelta(days=1)).replace(day=1)
    active: dict[date, set[str]] = defaultdict(set)
    for e in events:
        active[e.local_day.replace(day=1)].add(e.anon)
    return len(active[previous] - active[month]), len(active[previous]), len(active[month])


@pytest.mark.parametrize("back", [4, 5])
def test_churn_rate_of_the_last_complete_month(make_store: StoreFactory, back: int) -> None:
    events = churn_events(back)
    churned, previous, mau = ref_churn(events, date(2026, 10, 1))
    assert (churned, previous) == (10 - back, 10)
    pb = playbook(churn_rate={})
    with make_store([events], TZ) as store:
        mid_november = check(store, date(2026, 11, 10), pb)
        october_last_day = check(store, date(2026, 10, 31), pb)
        # on October 30th the last complete month is September: August had nobody
        assert check(store, date(2026, 10, 30), pb) == []
    assert mid_november == october_last_day
    if back == 5:
        assert mid_november == []  # exactly 50% is not above 50%
        return
    (alert,) = mid_november
    assert (alert.kind, alert.period, alert.severity) == ("churn_rate", "2026-10", "critical")
    assert alert.figures == {
        "churn_rate": churned / previous,
        "threshold": 0.5,
        "churned": churned,
        "previous_mau": previous,
        "mau": mau,
    }


# --------------------------------------------------------------------------- first-screen load


def ref_quantile(values: list[int], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    low = int(pos)
    high = min(low + 1, len(s) - 1)
    return s[low] + (s[high] - s[low]) * (pos - low)


def load_events(top_ms: int) -> list[Ev]:
    """40 loads in the week of Nov 9–15 (29 of 1 s, one of 2 s, ten of `top_ms`), and slow
    loads just outside it."""
    values = [1000] * 29 + [2000] + [top_ms] * 10
    out = [
        Ev("page_load", at(date(2026, 11, 9 + i % 7), 3, i), f"u{i}", load_ms=v)
        for i, v in enumerate(values[2:])
    ]
    out.append(Ev("page_load", utc("2026-11-08T16:00:00Z"), "edge", load_ms=values[0]))
    out.append(Ev("page_load", utc("2026-11-15T15:59:59Z"), "edge", load_ms=values[1]))
    for i in range(10):
        out.append(Ev("page_load", utc("2026-11-15T16:00:00Z"), f"x{i}", load_ms=9000))
        out.append(Ev("page_load", utc("2026-11-08T15:59:59Z"), f"y{i}", load_ms=9000))
    return out


@pytest.mark.parametrize("top_ms", [2004, 2000])
def test_first_screen_load_p75(make_store: StoreFactory, top_ms: int) -> None:
    events = load_events(top_ms)
    week = [e.load_ms for e in events if date(2026, 11, 9) <= e.local_day <= date(2026, 11, 15)]
    assert len(week) == 40
    p75 = ref_quantile([v for v in week if v is not None], 0.75)
    assert p75 == (2001.0 if top_ms == 2004 else 2000.0)
    with make_store([events], TZ) as store:
        # a Wednesday: the last complete week is Monday 9th to Sunday 15th
        fired = check(store, date(2026, 11, 18), playbook(first_screen_load={}))
        few = check(store, date(2026, 11, 18), playbook(first_screen_load={"min_loads": 41}))
        # on Sunday the 15th its own week is complete
        same_week = check(store, date(2026, 11, 15), playbook(first_screen_load={}))
    assert few == []
    assert same_week == fired
    if top_ms == 2000:
        assert fired == []  # exactly 2 s is within the target
        return
    (alert,) = fired
    assert (alert.kind, alert.period) == ("first_screen_load", "2026-W46")
    assert alert.figures == {
        "p75_ms": p75,
        "quantile": 0.75,
        "threshold_ms": 2000,
        "loads": 40,
        "from": "2026-11-09",
        "to": "2026-11-15",
    }


# --------------------------------------------------------------------------- promotion cliff


PROMO = {"name": "双11", "start": "2026-11-01", "end": "2026-11-14"}


def ref_weekly_actives(events: list[Ev], first: date) -> int:
    return len({e.anon for e in events if first <= e.local_day <= first + timedelta(days=6)})


def cliff_events(after_second_week: int) -> list[Ev]:
    """20 persons visit in each promotion week (Nov 1–7, 8–14); 14 in the week after it,
    `after_second_week` in the next."""
    out = [visit("before", date(2026, 10, 31))]
    for p in range(20):
        out += [visit(f"d{p}", date(2026, 11, 1 + p % 7)), visit(f"d{p}", date(2026, 11, 8))]
    # 23:59:59 local on the 14th: still in the promotion
    out.append(Ev("app_open", utc("2026-11-14T15:59:59Z"), "d0"))
    out += [visit(f"d{p}", date(2026, 11, 15 + p % 7)) for p in range(14)]
    out += [visit(f"d{p}", date(2026, 11, 22 + p % 7)) for p in range(after_second_week)]
    out.append(visit("later", date(2026, 11, 29)))
    return out


@pytest.mark.parametrize("after", [14, 15])
def test_promotion_cliff(make_store: StoreFactory, after: int) -> None:
    events = cliff_events(after)
    during = [ref_weekly_actives(events, date(2026, 11, d)) for d in (1, 8)]
    post = [ref_weekly_actives(events, date(2026, 11, d)) for d in (15, 22)]
    drop = 1 - Fraction(sum(post), 2) / Fraction(sum(during), 2)
    assert drop == (Fraction(3, 10) if after == 14 else Fraction(11, 40))
    pb = playbook(
        promotion_cliff={
            "promotions": [
                PROMO,
                {**PROMO, "name": "quiet", "start": "2026-06-01", "end": "2026-06-03"},
            ]
        }
    )
    with make_store([events], TZ) as store:
        fired = check(store, date(2026, 11, 28), pb)
        # the second week after the promotion is not over on the 27th
        assert check(store, date(2026, 11, 27), pb) == []
    if after == 15:
        assert fired == []  # a 27.5% fall is not a cliff of 30%
        return
    (alert,) = fired
    assert (alert.kind, alert.period) == ("promotion_cliff", "双11 2026-11-15/2026-11-28")
    assert alert.figures["weekly_actives_during"] == during == [20, 20]
    assert alert.figures["weekly_actives_after"] == post == [14, 14]
    assert alert.figures["drop"] == pytest.approx(float(drop), abs=1e-12)
    assert alert.figures["threshold"] == 0.3 and alert.severity == "critical"


# --------------------------------------------------------------------------- loyal user halved


AS_OF = date(2026, 11, 29)  # a Sunday: its week is complete
BLOCKS = 11  # 2 recent weeks, 8 before, and one more for the test a week earlier

# visits per 7-day block ending on AS_OF, newest first
HAND_BUILT = {
    "a": [2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4],  # halved exactly to 50%: fires
    "b": [2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4],  # 62.5%: silent
    "c": [0, 0, 4, 4, 4, 4, 4, 0, 0, 0, 4],  # active 5 of 8 weeks: not loyal
    "d": [1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4],  # halved a week ago already: silent
    "e": [0, 0, 3, 3, 3, 3, 3, 3, 0, 0, 3],  # active 6 of 8, gone: fires
}


def weekly_visits(who: str, blocks: list[int], user: str | None = None) -> list[Ev]:
    out = []
    for b, n in enumerate(blocks):
        for i in range(n):
            day = AS_OF - timedelta(days=7 * b + i % 7)
            out.append(Ev("app_open", at(day, 2, i), who))
    if user is not None:
        out.insert(0, Ev("identify", at(AS_OF - timedelta(days=7 * BLOCKS), 1), who, user))
    return out


def ref_loyal_halved(
    events: list[Ev], as_of: date, recent: int, baseline: int, min_weeks: int, ratio: Fraction
) -> set[str]:
    """Persons (a linked anonymous id is its user) whose visits halved this week and not in
    the week before, from the definition in docs/alerts.md."""
    person = {e.anon: e.user for e in sorted(events, key=lambda e: e.ts) if e.event == "identify"}
    visits: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for e in events:
        days_back = (as_of - e.local_day).days
        if e.event == "app_open" and 0 <= days_back < 7 * (recent + baseline + 1):
            visits[person.get(e.anon) or e.anon][days_back // 7] += 1

    def halved(v: dict[int, int], shift: int) -> bool:
        base = [v[b] for b in range(shift + recent, shift + recent + baseline)]
        if len([x for x in base if x]) < min_weeks:
            return False
        now = Fraction(sum(v[b] for b in range(shift, shift + recent)), recent)
        return now <= ratio * Fraction(sum(base), baseline)

    return {p for p, v in visits.items() if halved(v, 0) and not halved(v, 1)}


def test_loyal_user_halved(make_store: StoreFactory) -> None:
    events = [e for who, blocks in HAND_BUILT.items() for e in weekly_visits(who, blocks)]
    events += weekly_visits("dev-f", HAND_BUILT["a"], user="user-f")
    rng = random.Random(6)
    for i in range(40):
        level = rng.choice([1, 2, 3, 4, 6])
        blocks = [rng.choice([0, level // 2, level, level, level + 1]) for _ in range(BLOCKS)]
        events += weekly_visits(f"r{i}", blocks)
        # visits at local midnight move to the next day (and sometimes the next block)
        edge = AS_OF - timedelta(days=rng.randrange(7 * BLOCKS))
        events.append(Ev("app_open", at(edge, 16), f"r{i}"))
        events.append(Ev("app_open", at(edge, 15, 59, 59), f"r{i}"))
    rule = default_playbook().alerts.loyal_halved
    expected = ref_loyal_halved(
        events,
        AS_OF,
        rule.recent_weeks,
        rule.baseline_weeks,
        rule.min_active_weeks,
        Fraction(rule.max_ratio),
    )
    assert {"a", "e", "user-f"} <= expected
    assert not {"b", "c", "d", "dev-f"} & expected
    assert len(expected) > 3  # the random persons take part
    with make_store([events], TZ) as store:
        fired = check(store, AS_OF, playbook(loyal_halved={}))
        # the next Wednesday checks the same complete weeks
        assert check(store, AS_OF + timedelta(days=3), playbook(loyal_halved={})) == fired
    assert {a.subject for a in fired} == expected
    assert len(fired) == len(expected)
    a = next(x for x in fired if x.subject == "a")
    assert (a.kind, a.scope, a.period) == ("loyal_halved", "user", "2026-W48")
    assert a.figures["recent_weekly_visits"] == 2.0
    assert a.figures["baseline_weekly_visits"] == 4.0
    assert a.figures["active_weeks"] == 8 and a.figures["threshold"] == 0.5


# --------------------------------------------------------------------------- churn risk


def add_scores(
    engine: sa.Engine, app_id: str, rows: list[tuple[str, str, float, float | None]]
) -> None:
    with engine.begin() as conn:
        for person, as_of, risk, previous in rows:
            conn.execute(sa.delete(churn_scores).where(churn_scores.c.person_id == person))
            conn.execute(
                churn_scores.insert().values(
                    app_id=app_id,
                    person_id=person,
                    as_of=date.fromisoformat(as_of),
                    model_id="m1",
                    risk=risk,
                    previous_risk=previous,
                    reasons=json.dumps([{"feature": "days_since_visit", "zh": "x", "en": "x"}]),
                    scored_at=datetime.now(UTC),
                )
            )


def test_risk_crossed_and_stored_once(state_url: str, tmp_path: Path) -> None:
    state = open_state(state_url)
    shop = create_tenant(state, "shop", TZ)
    app = App(shop.app_id, "shop", TZ, shop.write_key)
    add_scores(
        state,
        app.app_id,
        [
            ("u1", "2026-11-20", 0.8, None),  # a first score: a baseline, not a crossing
            ("u2", "2026-11-20", 0.8, 0.5),  # crossed
            ("u3", "2026-11-20", 0.8, 0.75),  # above already: warned before
            ("u4", "2026-11-20", 0.7, 0.69),  # on the threshold: crossed
            ("u5", "2026-11-20", 0.69, 0.1),  # below
            ("u6", "2026-11-25", 0.9, 0.1),  # scored after the day checked
        ],
    )
    pb = playbook(risk_crossed={})
    pb = pb.model_copy(update={"risk": pb.risk.model_copy(update={"high_risk": 0.7})})
    with events_store("duckdb", [], TZ) as store:
        fired = check_alerts(store, state, app, date(2026, 11, 21), pb)
        assert [(a.subject, a.period) for a in fired] == [
            ("u2", "2026-11-20"),
            ("u4", "2026-11-20"),
        ]
        assert fired[0].figures["risk"] == 0.8 and fired[0].figures["previous_risk"] == 0.5
        assert fired[0].figures["threshold"] == 0.7
        assert fired[0].figures["reasons"] == ["days_since_visit"]
        first = store_alerts(state, app.app_id, fired, date(2026, 11, 21), webhook=False)
        again = store_alerts(state, app.app_id, fired, date(2026, 11, 21), webhook=False)
        assert [new for _, new in first] == [True] * 2
        assert [new for _, new in again] == [False] * 2
        assert [a.alert_id for a, _ in first] == [a.alert_id for a, _ in again]
        # u3 falls and crosses again on the 22nd: a new alert; the others are the same ones
        add_scores(state, app.app_id, [("u3", "2026-11-22", 0.9, 0.6)])
        fired = check_alerts(store, state, app, date(2026, 11, 22), pb)
        stored = store_alerts(state, app.app_id, fired, date(2026, 11, 22), webhook=False)
    assert {(a.subject, new) for a, new in stored} == {
        ("u2", False),
        ("u3", True),
        ("u4", False),
    }
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts_table)).scalar() == 3
    state.dispose()


def test_storing_is_idempotent_under_concurrency(state_url: str) -> None:
    state = open_state(state_url)
    shop = create_tenant(state, "shop", TZ)
    fired = [
        Alert(
            "loyal_halved",
            "user",
            f"p{i}",
            "2026-W48",
            "warning",
            {"n": i},
            "做",
            "do",
            "标题",
            "title",
        )
        for i in range(5)
    ]
    start = threading.Barrier(6)
    results: list[list[bool]] = []

    def store_them() -> None:
        start.wait()
        results.append(
            [
                new
                for _, new in store_alerts(
                    state, shop.app_id, fired, date(2026, 11, 29), webhook=True
                )
            ]
        )

    threads = [threading.Thread(target=store_them) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    # each alert was new for exactly one of the six
    assert [sum(r[i] for r in results) for i in range(5)] == [1] * 5
    assert len(list_alerts(state, shop.app_id, "all")) == 5
    state.dispose()


# --------------------------------------------------------------------------- webhook


class Receiver:
    """A real HTTP webhook receiver on a free local port. `plan(n)` says, for the n-th request
    carrying a key, whether to act on the alert and what to answer (status, headers). It acts
    on each Idempotency-Key once, as a receiver honouring the key does."""

    def __init__(self, plan: Callable[[int], tuple[bool, int, dict[str, str]]]) -> None:
        self.requests: list[str] = []
        self.processed: dict[str, dict[str, Any]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                receiver.requests.append(key)
                act, status, headers = plan(receiver.requests.count(key))
                if act and key not in receiver.processed:
                    receiver.processed[key] = body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        serve = functools.partial(self.server.serve_forever, poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(plan: Callable[[int], tuple[bool, int, dict[str, str]]]) -> Receiver:
        made.append(Receiver(plan))
        return made[-1]

    yield make
    for r in made:
        r.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def two_alerts(state: sa.Engine) -> tuple[App, list[int]]:
    shop = create_tenant(state, "shop", TZ)
    app = App(shop.app_id, "shop", TZ, shop.write_key)
    fired = [
        Alert(
            "churn_rate",
            "app",
            "",
            f"2026-{m:02d}",
            "critical",
            {"churn_rate": 0.6},
            "排查",
            "investigate",
            "流失率",
            "churn",
        )
        for m in (9, 10)
    ]
    stored = store_alerts(state, app.app_id, fired, date(2026, 11, 10), webhook=True)
    return app, [a.alert_id for a, _ in stored]


def test_webhook_retries_until_accepted_and_is_received_once(
    state_url: str, receivers: Callable[..., Receiver]
) -> None:
    def plan(n: int) -> tuple[bool, int, dict[str, str]]:
        if n == 1:
            return False, 503, {}
        if n == 2:  # acted on, but the answer is lost to the sender
            return True, 503, {}
        return True, 200, {}

    hook = receivers(plan)
    state = open_state(state_url)
    app, ids = two_alerts(state)
    waits: list[float] = []
    webhook = Webhook(url=hook.url, backoff_s=1, max_backoff_s=1.5, max_attempts=5)
    report = deliver_pending(state, app, webhook, sleep=waits.append)
    assert (report.delivered, report.failed, report.pending) == (2, 0, 0)
    assert waits == [1, 1.5, 1, 1.5]  # doubling, capped
    assert len(hook.requests) == 6 and len(set(hook.requests)) == 2
    assert len(hook.processed) == 2  # each alert acted on once
    bodies = sorted(hook.processed.values(), key=lambda b: b["id"])
    assert [b["id"] for b in bodies] == sorted(ids)
    assert {b["period"] for b in bodies} == {"2026-09", "2026-10"}
    assert bodies[0]["kind"] == "churn_rate" and bodies[0]["severity"] == "critical"
    assert bodies[0]["title"] == {"zh": "流失率", "en": "churn"}
    assert bodies[0]["app"] == {"id": app.app_id, "name": "shop"}
    for alert_id in ids:
        tried = attempts_of(state, alert_id)
        assert [(t.status_code, t.outcome) for t in tried] == [
            (503, "retry"),
            (503, "retry"),
            (200, "delivered"),
        ]
        alert = get_alert(state, app.app_id, alert_id)
        assert (alert.delivery, alert.attempts) == ("delivered", 3)
        assert alert.delivered_at is not None
    # delivered alerts are not sent again
    assert deliver_pending(state, app, webhook, sleep=waits.append).delivered == 0
    assert len(hook.requests) == 6
    state.dispose()


def test_webhook_honours_retry_after_and_does_not_retry_a_400(
    state_url: str, receivers: Callable[..., Receiver]
) -> None:
    state = open_state(state_url)
    app, _ = two_alerts(state)
    busy = receivers(lambda n: (n > 1, 429 if n == 1 else 200, {"Retry-After": "4"}))
    waits: list[float] = []
    webhook = Webhook(url=busy.url, backoff_s=1, max_backoff_s=10)
    assert deliver_pending(state, app, webhook, sleep=waits.append).delivered == 2
    assert waits == [4, 4]
    refusing = receivers(lambda n: (False, 400, {}))
    more = [Alert("churn_rate", "app", "", "2026-08", "critical", {}, "a", "a", "t", "t")]
    ((stored, _),) = store_alerts(state, app.app_id, more, date(2026, 11, 10), webhook=True)
    report = deliver_pending(
        state, app, webhook.model_copy(update={"url": refusing.url}), sleep=waits.append
    )
    assert (report.delivered, report.failed, report.pending) == (0, 1, 0)
    assert refusing.requests == [stored.idempotency_key]  # one attempt, no retry
    assert [(t.status_code, t.outcome) for t in attempts_of(state, stored.alert_id)] == [
        (400, "failed")
    ]
    assert get_alert(state, app.app_id, stored.alert_id).delivery == "failed"
    state.dispose()


def test_unreachable_webhook_leaves_alerts_pending_until_deliver(
    settings: Settings,
    receivers: Callable[..., Receiver],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = open_state(settings.state_store_url)
    app, ids = two_alerts(state)
    ids.sort()  # delivered oldest first
    webhook = Webhook(url=closed_port_url(), max_attempts=3, backoff_s=0, timeout_s=2)
    report = deliver_pending(state, app, webhook, sleep=lambda s: None)
    assert (report.delivered, report.failed, report.pending) == (0, 0, 2)
    tried = attempts_of(state, ids[0])
    assert [(t.attempt, t.status_code, t.outcome) for t in tried] == [
        (1, None, "retry"),
        (2, None, "retry"),
        (3, None, "retry"),
    ]
    assert tried[0].error is not None and "Connect" in tried[0].error
    # the webhook is down: the second alert waits for the next run without being tried
    assert attempts_of(state, ids[1]) == []
    assert {a.delivery for a in list_alerts(state, app.app_id)} == {"pending"}
    hook = receivers(lambda n: (True, 200, {}))
    apply_playbook(
        state, app.app_id, f"version: 1\nalerts:\n  webhook: {{url: '{hook.url}', backoff_s: 0}}\n"
    )
    out = run_cli(settings, tmp_path, monkeypatch, "alerts", "deliver", "--app", "shop", "--json")
    assert orjson.loads(out) == {"delivered": 2, "failed": 0, "pending": 0}
    assert len(hook.processed) == 2
    assert [t.outcome for t in attempts_of(state, ids[0])] == ["retry"] * 3 + ["delivered"]
    state.dispose()


# --------------------------------------------------------------------------- CLI and API


def run_cli(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, code: int = 0
) -> str:
    monkeypatch.chdir(tmp_path)
    env = {
        "LIUCUN_DATA_DIR": str(settings.data_dir),
        "LIUCUN_STATE_STORE": settings.state_store_url,
        "COLUMNS": "250",
    }
    done = CliRunner().invoke(cli_app, list(args), env=env)
    assert done.exit_code == code, (done.output, done.exception)
    return done.output


def store_events(settings: Settings, app_id: str, events: list[Ev]) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_events(settings)
    try:
        batch = validate_events([e.raw() for e in events], app_id, datetime.now(UTC))
        store.append(batch.table, {app_id: TZ})
    finally:
        store.close()


def test_cli(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = open_state(settings.state_store_url)
    shop = create_tenant(state, "shop", TZ)
    state.dispose()
    store_events(settings, shop.app_id, churn_events(4))

    def run(*args: str, code: int = 0) -> str:
        return run_cli(settings, tmp_path, monkeypatch, "alerts", *args, code=code)

    checked = orjson.loads(run("check", "--app", "shop", "--date", "2026-11-10", "--json"))
    assert checked["as_of"] == "2026-11-10"
    # October lost 6 of September's 10; November's first week had one visit, no revisit
    kinds = {a["kind"]: a for a in checked["alerts"]}
    assert set(kinds) == {"churn_rate", "weekly_revisits"}
    assert all(a["new"] and a["delivery"] == "off" for a in kinds.values())
    alert = kinds["churn_rate"]
    assert alert["period"] == "2026-10" and alert["figures"]["churn_rate"] == 0.6
    assert kinds["weekly_revisits"]["figures"]["weekly_revisits"] == 0.0
    table = run("check", "--app", "shop", "--date", "2026-11-10")
    assert "流失率" in table and "Churn" in table and "否 no" in table and "是 yes" not in table
    listed = [a["id"] for a in orjson.loads(run("list", "--app", "shop", "--json"))]
    assert listed == sorted((a["id"] for a in kinds.values()), reverse=True)
    assert "已确认 acknowledged" in run("ack", str(alert["id"]), "--app", "shop")
    still_open = orjson.loads(run("list", "--app", "shop", "--json"))
    assert [a["kind"] for a in still_open] == ["weekly_revisits"]
    assert len(orjson.loads(run("list", "--app", "shop", "--all", "--json"))) == 2
    run("check", "--app", "shop", "--date", "2026-02-30", code=2)
    run("check", "--app", "shop", "--date", "2999-01-01", code=2)
    run("ack", "999", "--app", "shop", code=1)
    run("deliver", "--app", "shop", code=1)  # no webhook in the playbook


SERVER_ADMIN = "server-admin-token-for-tests"


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, AppCredentials]]:
    settings = Settings(
        data_dir=settings.data_dir,
        state_store=settings.state_store,
        admin_token=SERVER_ADMIN,
        daily_at="off",
    )
    state = open_state(settings.state_store_url)
    shop = create_tenant(state, "shop", TZ)
    state.dispose()
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/v1/batch",
            content=orjson.dumps({"batch": [e.raw() for e in churn_events(4)]}),
            headers={"Authorization": f"Bearer {shop.write_key}"},
        )
        assert r.status_code == 200, r.text
        yield client, shop


def test_api(api: tuple[TestClient, AppCredentials]) -> None:
    client, shop = api
    auth = {"Authorization": f"Bearer {shop.admin_token}"}
    base = "/admin/v1/apps/shop/alerts"
    r = client.post(f"{base}/check", params={"date": "2026-11-10"}, headers=auth)
    assert r.status_code == 200, r.text
    kinds = {a["kind"]: a for a in r.json()["alerts"]}
    assert set(kinds) == {"churn_rate", "weekly_revisits"}
    alert = kinds["churn_rate"]
    assert (alert["new"], alert["figures"]["churned"], alert["severity"]) == (True, 6, "critical")
    assert alert["title"]["zh"].startswith("2026-10 流失率 60.0%")
    again = client.post(f"{base}/check", params={"date": "2026-11-10"}, headers=auth).json()
    assert sorted((a["id"], a["new"]) for a in again["alerts"]) == sorted(
        (a["id"], False) for a in kinds.values()
    )
    assert len(client.get(base, headers=auth).json()) == 2
    acked = client.post(f"{base}/{alert['id']}/ack", headers=auth).json()
    assert acked["acknowledged_at"] is not None
    assert client.post(f"{base}/{alert['id']}/ack", headers=auth).json() == acked
    assert [a["kind"] for a in client.get(base, headers=auth).json()] == ["weekly_revisits"]
    everything = client.get(base, params={"status": "all", "kind": "churn_rate"}, headers=auth)
    assert [a["id"] for a in everything.json()] == [alert["id"]]

    assert client.get(base).status_code == 401
    server = {"Authorization": f"Bearer {SERVER_ADMIN}"}
    assert client.get("/admin/v1/apps/nope/alerts", headers=server).status_code == 404
    assert client.get("/admin/v1/apps/nope/alerts", headers=auth).status_code == 403
    assert client.post(f"{base}/999/ack", headers=auth).status_code == 404
    tomorrow = datetime.now(ZONE).date() + timedelta(days=1)
    for bad in (
        client.get(base, params={"status": "closed"}, headers=auth),
        client.get(base, params={"kind": "nope"}, headers=auth),
        client.post(f"{base}/check", params={"date": "2026-13-01"}, headers=auth),
        client.post(f"{base}/check", params={"date": str(tomorrow)}, headers=auth),
        client.post(f"{base}/abc/ack", headers=auth),
    ):
        assert bad.status_code == 422, bad.text
    assert (
        "after today"
        in client.post(f"{base}/check", params={"date": str(tomorrow)}, headers=auth).json()[
            "detail"
        ]
    )


def test_user_alerts_can_stay_off_the_webhook(tmp_path: Path) -> None:
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    shop = create_tenant(state, "shop", TZ)

    def fired(scope: str, subject: str) -> Alert:
        return Alert(
            scope + "_kind", scope, subject, "2026-W48", "warning", {}, "做", "do", "标", "t"
        )

    both = [fired("app", ""), fired("user", "p1")]
    sent = store_alerts(state, shop.app_id, both, date(2026, 11, 29), webhook=True)
    assert [a.delivery for a, _ in sent] == ["pending", "pending"]
    quiet = [fired("app", "x"), fired("user", "p2")]
    kept = store_alerts(
        state, shop.app_id, quiet, date(2026, 11, 29), webhook=True, user_alerts=False
    )
    # the user-level alert is stored and listed, but not queued for the webhook
    assert [(a.scope, a.delivery) for a, _ in kept] == [("app", "pending"), ("user", "off")]
    assert Webhook().user_alerts and default_playbook().alerts.webhook.user_alerts
    state.dispose()
