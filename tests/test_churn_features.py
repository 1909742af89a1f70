"""Churn-risk features and labels against an independent plain-Python reference.

The reference below is written from the definitions in `liucun.lifecycle.features.FEATURES`
(zoneinfo for app-local days, dicts and loops for persons, a textbook least-squares slope for
the trends), not from the SQL. Seeded random event sets over five months compare every
feature of every person; hand-built cases pin answers worked out by hand: local midnight in
Asia/Shanghai, an anonymous id identified later, the edge of the 90-day scope, and labels.

Each test runs once per event-store engine in `ENGINES`.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from liucun.lifecycle.features import (
    FEATURE_NAMES,
    FEATURES,
    FeatureError,
    churn_labels,
    person_features,
)
from tests.reference_stores import APP, ENGINES, events_store

ID_NAMESPACE = uuid.UUID("3a8d0c55-7b1e-4f62-8e3d-2c9f41a7b6e0")
SHANGHAI = "Asia/Shanghai"
_counter = iter(range(1_000_000_000))


@dataclass(frozen=True)
class Ev:
    """One raw event; `ts` is a UTC instant."""

    event: str
    ts: datetime
    anon: str | None = None
    user: str | None = None
    load_ms: int | None = None
    duration_ms: int | None = None
    amount: str | None = None
    result: str | None = None
    event_id: str = field(
        default_factory=lambda: str(uuid.uuid5(ID_NAMESPACE, f"e-{next(_counter)}"))
    )

    def raw(self) -> dict[str, Any]:
        e: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if self.anon is not None:
            e["anonymous_id"] = self.anon
        if self.user is not None:
            e["user_id"] = self.user
        if self.event in ("page_view", "page_leave", "page_load"):
            e["page"] = "pages/home"
        if self.load_ms is not None:
            e["load_ms"] = self.load_ms
        if self.duration_ms is not None:
            e["duration_ms"] = self.duration_ms
        if self.event == "order_paid":
            e["amount"] = self.amount
            e["properties"] = {"order_id": f"o-{self.event_id}"}
        if self.event == "subscribe_consent":
            e["properties"] = {"template_id": "t1", "result": self.result}
        return e


def at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


# --------------------------------------------------------------------------- reference


def ref_features(events: list[Ev], tz: str, as_of: date) -> dict[str, dict[str, Any]]:
    """Every feature of every person in scope, from the definitions, by person text id."""
    zone = ZoneInfo(tz)
    links: dict[str, str] = {}
    for e in sorted((e for e in events if e.event == "identify"), key=lambda e: e.ts):
        assert e.anon is not None and e.user is not None
        links.setdefault(e.anon, e.user)  # the earliest link wins; links known now count

    def person(e: Ev) -> str:
        distinct = e.user if e.user is not None else e.anon
        assert distinct is not None
        return links.get(distinct, distinct)

    def day(e: Ev) -> date:
        return e.ts.astimezone(zone).date()

    mine: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        if day(e) <= as_of:
            mine[person(e)].append(e)
    out = {}
    for p, evs in mine.items():
        days = sorted({day(e) for e in evs})
        if (as_of - days[-1]).days > 89:
            continue  # outside the 90-day scope

        def within(e: Ev, n: int) -> bool:
            return (as_of - day(e)).days < n

        def count(kind: str, n: int) -> int:
            return sum(1 for e in evs if e.event == kind and within(e, n))  # noqa: B023

        def weekly(value: Any) -> float:
            # weeks 0..3, oldest first: week w holds days as_of-27+7w … as_of-21+7w
            ys = [0.0] * 4
            for e in evs:  # noqa: B023
                back = (as_of - day(e)).days
                if back < 28:
                    ys[3 - back // 7] += value(e)
            xs = [0, 1, 2, 3]
            mx, my = sum(xs) / 4, sum(ys) / 4
            return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
                (x - mx) ** 2 for x in xs
            )

        recency = (as_of - days[-1]).days
        tenure = (as_of - days[0]).days
        in90 = [d for d in days if (as_of - d).days < 90]
        gap = (in90[-1] - in90[0]).days / (len(in90) - 1) if len(in90) > 1 else None
        seen = min(tenure + 1, 90)
        orders = [e for e in evs if e.event == "order_paid" and within(e, 90)]
        loads = [e.load_ms for e in evs if e.load_ms is not None and within(e, 90)]
        consents = sorted((e for e in evs if e.event == "subscribe_consent"), key=lambda e: e.ts)
        answer = consents[-1].result if consents else None
        out[p] = {
            "recency_days": recency,
            "tenure_days": tenure,
            "active_days_7": sum(1 for d in days if (as_of - d).days < 7),
            "active_days_30": sum(1 for d in days if (as_of - d).days < 30),
            "active_days_90": len(in90),
            "visit_gap_days": gap,
            "recency_to_gap": recency / gap if gap else None,
            "silence_surprise": -recency * math.log(1 - len(in90) / (seen + 1)),
            "visits_30": count("app_open", 30),
            "visits_trend": weekly(lambda e: e.event == "app_open"),
            "page_views_30": count("page_view", 30),
            "dwell_minutes_30": sum(e.duration_ms or 0 for e in evs if within(e, 30)) / 60_000,
            "dwell_trend": weekly(lambda e: (e.duration_ms or 0) / 60_000),
            "orders_90": len(orders),
            "amount_90": float(sum(Decimal(e.amount or "0") for e in orders)),
            "order_recency_days": min((as_of - day(e)).days for e in orders) if orders else 90,
            "load_ms_mean": sum(loads) / len(loads) if loads else None,
            "slow_load_share": sum(1 for x in loads if x > 2000) / len(loads) if loads else None,
            "check_ins_30": count("check_in", 30),
            "shares_90": count("share", 90),
            "consent_accepted": int(answer == "accept"),
            "consent_refused": int(answer in ("reject", "ban")),
            "identified": int(any(e.user is not None for e in evs)),
            # the shipped e-commerce preset's one signal: an established user (active after
            # their first week) who bought before and not in the last 30 days, +1
            "depth_shift": int(
                (days[-1] - days[0]).days >= 7
                and any(e.event == "order_paid" for e in evs)
                and count("order_paid", 30) == 0
            ),
        }
    return out


def ref_labels(events: list[Ev], tz: str, as_of: date, horizon: int) -> dict[str, int]:
    """1 for each person in scope with no event in the `horizon` days after `as_of`."""
    scope = ref_features(events, tz, as_of)
    later = ref_features(events, tz, as_of + timedelta(days=horizon))
    return {p: int(p not in later or later[p]["recency_days"] >= horizon) for p in scope}


def engine_features(store: Any, tz: str, as_of: date) -> dict[str, dict[str, Any]]:
    table = person_features(store, APP, tz, as_of)
    assert table.column_names == ["person_key", "person_id", *FEATURE_NAMES]
    assert table.column("person_id").to_pylist() == sorted(table.column("person_id").to_pylist())
    return {r["person_id"]: {n: r[n] for n in FEATURE_NAMES} for r in table.to_pylist()}


def assert_same(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert sorted(got) == sorted(want)
    for p, features in want.items():
        for name, value in features.items():
            mine = got[p][name]
            if value is None:
                assert mine is None, (p, name, mine)
            else:
                assert mine == pytest.approx(value, rel=1e-9, abs=1e-9), (p, name, mine, value)


# --------------------------------------------------------------------------- random sets

KINDS = ["app_open", "page_view", "page_leave", "page_load", "order_paid", "check_in", "share"]
KINDS += ["subscribe_consent", "tap_none"]


def random_events(seed: int) -> list[Ev]:
    """Five months of events of a few devices and users, some identified, many near local
    midnight in Shanghai (16:00 UTC)."""
    rng = random.Random(seed)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    out: list[Ev] = []
    anons = [f"d{seed}-{i}" for i in range(7)]
    users = {anons[0]: "u-a", anons[1]: "u-b"}  # these two log in at some point
    for anon in anons:
        active = sorted(rng.sample(range(150), rng.randint(1, 25)))
        login = rng.choice(active) if anon in users else None
        for d in active:
            for _ in range(rng.randint(1, 4)):
                moment = start + timedelta(days=d)
                if rng.random() < 0.3:  # just before or after local midnight
                    moment += timedelta(hours=16, seconds=rng.choice([-1, 0, 1]))
                else:
                    moment += timedelta(seconds=rng.randrange(86_400))
                kind = rng.choice(KINDS)
                user = users.get(anon) if login is not None and d > login else None
                e = Ev(
                    "app_open" if kind == "tap_none" else kind,
                    moment,
                    anon,
                    user,
                    load_ms=rng.choice([300, 1999, 2000, 2001, 5200])
                    if kind == "page_load"
                    else None,
                    duration_ms=rng.randrange(1, 600_000) if kind == "page_leave" else None,
                    amount=f"{rng.randrange(1, 50_000) / 100:.2f}"
                    if kind == "order_paid"
                    else None,
                    result=rng.choice(["accept", "reject", "ban"])
                    if kind == "subscribe_consent"
                    else None,
                )
                out.append(e)
            if d == login:
                moment = start + timedelta(days=d, hours=rng.randrange(24))
                out.append(Ev("identify", moment, anon, users[anon]))
    # a user who only ever sends with its user id
    for d in sorted(rng.sample(range(150), 6)):
        out.append(Ev("app_open", start + timedelta(days=d, hours=3), None, f"u-only-{seed}"))
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_features_match_reference(engine: str, seed: int) -> None:
    events = random_events(seed)
    days = [date(2026, 3, 15), date(2026, 5, 20), date(2026, 6, 30)]
    with events_store(
        engine, [events[: len(events) // 2], events[len(events) // 2 :]], SHANGHAI
    ) as store:
        for as_of in days:
            assert_same(
                engine_features(store, SHANGHAI, as_of), ref_features(events, SHANGHAI, as_of)
            )
        for as_of, horizon in ((date(2026, 3, 15), 30), (date(2026, 5, 20), 7)):
            table = churn_labels(store, APP, SHANGHAI, as_of, horizon)
            got = dict(
                zip(table["person_id"].to_pylist(), table["churned"].to_pylist(), strict=True)
            )
            assert got == ref_labels(events, SHANGHAI, as_of, horizon)


# --------------------------------------------------------------------------- by hand


def test_every_feature_is_documented() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURES)
    doc = (Path(__file__).parent.parent / "docs" / "churn-risk.md").read_text()
    for f in FEATURES:
        assert f.zh and f.en and len(f.definition) > 20
        assert f"| `{f.name}` | {f.zh} | {f.en} |" in doc, f.name


@pytest.mark.parametrize("engine", ENGINES)
def test_local_midnight_in_shanghai(engine: str) -> None:
    # 15:59:59 UTC is 23:59:59 on 1 March in Shanghai; 16:00:00 UTC is 2 March
    events = [
        Ev("app_open", at("2026-03-01T15:59:59Z"), "a"),
        Ev("page_load", at("2026-03-01T15:59:59Z"), "a", load_ms=1500),
        Ev("app_open", at("2026-03-01T16:00:00Z"), "a"),
        Ev("page_load", at("2026-03-01T16:00:00Z"), "a", load_ms=2500),
    ]
    with events_store(engine, [events], SHANGHAI) as store:
        first = engine_features(store, SHANGHAI, date(2026, 3, 1))["a"]
        second = engine_features(store, SHANGHAI, date(2026, 3, 2))["a"]
    assert (first["recency_days"], first["tenure_days"], first["active_days_7"]) == (0, 0, 1)
    assert (first["visits_30"], first["load_ms_mean"], first["slow_load_share"]) == (1, 1500, 0)
    assert (second["recency_days"], second["tenure_days"], second["active_days_7"]) == (0, 1, 2)
    assert (second["visits_30"], second["load_ms_mean"], second["slow_load_share"]) == (
        2,
        2000,
        0.5,
    )
    # two visits in the latest week, none before: slope of (0, 0, 0, 2) over weeks 0..3 = 0.6
    assert second["visits_trend"] == pytest.approx(0.6)
    assert second["visit_gap_days"] == 1 and second["recency_to_gap"] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_anonymous_id_identified_later(engine: str) -> None:
    events = [
        Ev("app_open", at("2026-03-01T02:00:00Z"), "dev-1"),
        Ev("app_open", at("2026-03-03T02:00:00Z"), "dev-1"),
        Ev("subscribe_consent", at("2026-03-03T02:01:00Z"), "dev-1", result="reject"),
        Ev("identify", at("2026-03-05T02:00:00Z"), "dev-1", "user-1"),
        Ev("app_open", at("2026-03-06T02:00:00Z"), None, "user-1"),
        Ev("subscribe_consent", at("2026-03-06T02:01:00Z"), None, "user-1", result="accept"),
    ]
    with events_store(engine, [events], SHANGHAI) as store:
        before = engine_features(store, SHANGHAI, date(2026, 3, 4))
        after = engine_features(store, SHANGHAI, date(2026, 3, 6))
        with pytest.raises(FeatureError, match="2026-03-08"):
            churn_labels(store, APP, SHANGHAI, date(2026, 3, 6), 2)
        labels = churn_labels(store, APP, SHANGHAI, date(2026, 3, 3), 1)
        assert labels["person_id"].to_pylist() == ["user-1"]
        assert labels["churned"].to_pylist() == [1]  # nothing on 4 March
        assert churn_labels(store, APP, SHANGHAI, date(2026, 3, 3), 2)["churned"].to_pylist() == [0]
    # the device is the user's person even before the login (the link is known now), but it
    # had not logged in yet: identified is 0
    assert list(before) == ["user-1"]
    b = before["user-1"]
    assert (b["active_days_30"], b["recency_days"], b["tenure_days"], b["identified"]) == (
        2,
        1,
        3,
        0,
    )
    assert (b["consent_accepted"], b["consent_refused"]) == (0, 1)
    assert list(after) == ["user-1"]
    a = after["user-1"]
    assert (a["active_days_30"], a["visits_30"], a["identified"], a["recency_days"]) == (4, 3, 1, 0)
    assert (a["consent_accepted"], a["consent_refused"]) == (1, 0)
    assert a["visit_gap_days"] == pytest.approx(5 / 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_scope_is_the_90_days_to_as_of(engine: str) -> None:
    as_of = date(2026, 6, 30)

    def local_noon(d: date) -> datetime:
        return datetime.combine(d, time(12), ZoneInfo(SHANGHAI)).astimezone(UTC)

    events = [
        Ev("app_open", local_noon(as_of - timedelta(days=89)), "in"),
        Ev("order_paid", local_noon(as_of - timedelta(days=89)), "in", amount="12.50"),
        Ev("app_open", local_noon(as_of - timedelta(days=90)), "out"),
        Ev("app_open", local_noon(as_of + timedelta(days=1)), "later"),
    ]
    with events_store(engine, [events], SHANGHAI) as store:
        got = engine_features(store, SHANGHAI, as_of)
    assert list(got) == ["in"]
    assert (got["in"]["recency_days"], got["in"]["orders_90"]) == (89, 1)
    assert (got["in"]["amount_90"], got["in"]["order_recency_days"]) == (12.5, 89)
