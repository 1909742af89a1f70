"""The daily rollup, persons and headline figures against a plain-Python reference (zoneinfo)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from liucun.analytics.headline import headline
from liucun.events.batch import validate_events
from liucun.warehouse.duckdb_store import DuckDBEventStore
from liucun.warehouse.person_keys import id_key
from liucun.warehouse.queries import person_days_sql

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)
ZONES = {"sh": "Asia/Shanghai", "ny": "America/New_York"}


@dataclass(frozen=True)
class Ev:
    app: str
    name: str
    ts: str  # UTC, ISO 8601
    anon: str | None = None
    user: str | None = None
    amount: str | None = None
    duration_ms: int | None = None

    def wire(self) -> dict[str, Any]:
        e: dict[str, Any] = {"event_id": str(uuid.uuid4()), "event": self.name, "ts": self.ts}
        if self.anon:
            e["anonymous_id"] = self.anon
        if self.user:
            e["user_id"] = self.user
        if self.name in ("page_view", "page_leave"):
            e["page"] = "pages/home"
        if self.duration_ms is not None:
            e["duration_ms"] = self.duration_ms
        if self.amount is not None:
            e["amount"] = self.amount
            e["properties"] = {"order_id": str(uuid.uuid4())}
        return e

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.ts.replace("Z", "+00:00"))

    @property
    def distinct_id(self) -> str:
        return self.user or self.anon or ""

    @property
    def day(self) -> date:
        return self.moment.astimezone(ZoneInfo(ZONES[self.app])).date()


def sh_events() -> list[Ev]:
    """Asia/Shanghai (UTC+8): local midnight is 16:00Z the day before."""
    return [
        # 23:59:59 and 00:00:00 local: two different days
        Ev("sh", "app_open", "2026-11-19T15:59:59Z", anon="dev-1"),
        Ev("sh", "page_view", "2026-11-19T16:00:00Z", anon="dev-1"),
        Ev("sh", "page_leave", "2026-11-19T16:00:05Z", anon="dev-1", duration_ms=5_000),
        Ev("sh", "page_leave", "2026-11-19T17:00:00Z", anon="dev-1", duration_ms=1_234),
        Ev("sh", "order_paid", "2026-11-19T16:30:00Z", anon="dev-1", amount="19.99"),
        Ev("sh", "order_paid", "2026-11-19T16:31:00Z", anon="dev-1", amount="0.01"),
        Ev("sh", "order_paid", "2026-11-19T16:32:00Z", anon="dev-1", amount="0.10"),
        Ev("sh", "app_open", "2026-11-20T03:00:00Z", user="u-2"),
        Ev("sh", "app_open", "2026-11-20T04:00:00Z", user="u-2"),
        Ev("sh", "order_paid", "2026-11-20T05:00:00Z", user="u-2", amount="1234567.89"),
        # dev-9 browses anonymously on 11-10 and 11-12, logs in as u-9 on 11-12,
        # and is later linked to u-other, a link that must lose to the earlier one
        Ev("sh", "app_open", "2026-11-10T01:00:00Z", anon="dev-9"),
        Ev("sh", "page_view", "2026-11-12T01:00:00Z", anon="dev-9"),
        Ev("sh", "identify", "2026-11-12T02:00:00Z", anon="dev-9", user="u-9"),
        Ev("sh", "app_open", "2026-11-13T01:00:00Z", anon="dev-9", user="u-9"),
        Ev("sh", "identify", "2026-11-14T02:00:00Z", anon="dev-9", user="u-other"),
        Ev("sh", "app_open", "2026-11-14T03:00:00Z", user="u-other"),
        # the headline window for 11-20 starts on 10-22 local (10-21T16:00Z): in and out
        Ev("sh", "app_open", "2026-10-21T16:00:00Z", anon="dev-edge-in"),
        Ev("sh", "app_open", "2026-10-21T15:59:59Z", anon="dev-edge-out"),
        # after the window's last day (11-21 local)
        Ev("sh", "app_open", "2026-11-20T16:00:00Z", anon="dev-late"),
    ]


def ny_events() -> list[Ev]:
    """America/New_York: EST (−5) until 2026-03-08 02:00, EDT (−4) until 2026-11-01 02:00."""
    moments = [
        "2026-03-08T04:59:59Z",  # 03-07 23:59:59 EST
        "2026-03-08T05:00:00Z",  # 03-08 00:00:00 EST
        "2026-03-08T06:59:59Z",  # 03-08 01:59:59 EST
        "2026-03-08T07:00:00Z",  # 03-08 03:00:00 EDT (02:00 does not exist)
        "2026-03-09T03:59:59Z",  # 03-08 23:59:59 EDT
        "2026-03-09T04:00:00Z",  # 03-09 00:00:00 EDT
        "2026-10-31T04:00:00Z",  # 10-31 00:00:00 EDT
        "2026-11-01T03:59:59Z",  # 10-31 23:59:59 EDT
        "2026-11-01T04:00:00Z",  # 11-01 00:00:00 EDT
        "2026-11-01T05:30:00Z",  # 11-01 01:30 EDT
        "2026-11-01T06:30:00Z",  # 11-01 01:30 EST (the hour repeats)
        "2026-11-02T04:59:59Z",  # 11-01 23:59:59 EST
        "2026-11-02T05:00:00Z",  # 11-02 00:00:00 EST
    ]
    out = []
    for i, ts in enumerate(moments):
        name = ("app_open", "page_view", "page_leave", "order_paid")[i % 4]
        out.append(
            Ev(
                "ny",
                name,
                ts,
                anon="ny-dev",
                amount="3.33" if name == "order_paid" else None,
                duration_ms=700 + i if name == "page_leave" else None,
            )
        )
    return out


EVENTS = sh_events() + ny_events()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBEventStore]:
    path: Path = tmp_path_factory.mktemp("rollup") / "events.duckdb"
    s = DuckDBEventStore(str(path))
    # three commits per app, interleaved, so the rollup holds partials to be added up
    for app in ZONES:
        mine = [e for e in EVENTS if e.app == app]
        for part in (mine[0::3], mine[1::3], mine[2::3]):
            batch = validate_events([e.wire() for e in part], app, RECEIVED)
            assert batch.rejected == [] and batch.table.num_rows == len(part)
            s.append(batch.table, {app: ZONES[app]})
    yield s
    s.close()


def summary(events: list[Ev]) -> dict[str, Any]:
    return {
        "events": len(events),
        "visits": sum(e.name == "app_open" for e in events),
        "page_views": sum(e.name == "page_view" for e in events),
        "orders": sum(e.name == "order_paid" for e in events),
        "amount": sum((Decimal(e.amount) for e in events if e.amount), Decimal("0")),
        "duration_ms": sum(e.duration_ms or 0 for e in events),
        "first_ts": min(e.moment for e in events),
        "last_ts": max(e.moment for e in events),
    }


FIELDS = "events, visits, page_views, orders, amount, duration_ms, first_ts, last_ts"
SUMS = (
    "sum(events) AS events, sum(visits) AS visits, sum(page_views) AS page_views, "
    "sum(orders) AS orders, sum(amount) AS amount, sum(duration_ms) AS duration_ms, "
    "min(first_ts) AS first_ts, max(last_ts) AS last_ts"
)


def rows_by_key(rows: list[dict[str, Any]], *key: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for r in rows:
        k = tuple(r.pop(name) for name in key)
        assert k not in out
        out[k] = {name: (int(v) if isinstance(v, int) else v) for name, v in r.items()}
    return out


def test_user_days_match_reference(store: DuckDBEventStore) -> None:
    groups: dict[tuple[str, str, date], list[Ev]] = defaultdict(list)
    for e in EVENTS:
        groups[(e.app, e.distinct_id, e.day)].append(e)
    want = {k: summary(v) for k, v in groups.items()}
    rows = store.query(
        f"SELECT app_id, distinct_id, day, {SUMS} FROM user_days GROUP BY 1, 2, 3"
    ).to_pylist()
    got = rows_by_key(rows, "app_id", "distinct_id", "day")
    assert got == want
    # money stays exact
    assert got[("sh", "dev-1", date(2026, 11, 20))]["amount"] == Decimal("20.10")
    assert got[("sh", "u-2", date(2026, 11, 20))]["amount"] == Decimal("1234567.89")


def test_shanghai_midnight_splits_days(store: DuckDBEventStore) -> None:
    rows = store.query(
        "SELECT day, sum(events) AS n, sum(visits) AS visits FROM user_days "
        "WHERE app_id = 'sh' AND distinct_id = 'dev-1' GROUP BY day ORDER BY day"
    ).to_pylist()
    assert rows == [
        {"day": date(2026, 11, 19), "n": 1, "visits": 1},
        {"day": date(2026, 11, 20), "n": 6, "visits": 0},
    ]


def test_new_york_days_across_dst_switches(store: DuckDBEventStore) -> None:
    rows = store.query(
        "SELECT day, sum(events) AS n FROM user_days WHERE app_id = 'ny' GROUP BY day ORDER BY day"
    ).to_pylist()
    assert [(r["day"], r["n"]) for r in rows] == [
        (date(2026, 3, 7), 1),
        (date(2026, 3, 8), 4),
        (date(2026, 3, 9), 1),
        (date(2026, 10, 31), 2),
        (date(2026, 11, 1), 4),
        (date(2026, 11, 2), 1),
    ]
    # the same figures from zoneinfo
    counts: dict[date, int] = defaultdict(int)
    for e in EVENTS:
        if e.app == "ny":
            counts[e.day] += 1
    assert [(r["day"], r["n"]) for r in rows] == sorted(counts.items())


def persons_reference(app: str) -> dict[str, str]:
    """anonymous id → person: the earliest identify link wins."""
    links = sorted(
        (e.moment, e.anon, e.user)
        for e in EVENTS
        if e.app == app and e.name == "identify" and e.anon and e.user
    )
    out: dict[str, str] = {}
    for _, anon, user in links:
        out.setdefault(anon, user)
    return out


def person_days_reference(app: str) -> dict[tuple[str, date], dict[str, Any]]:
    persons = persons_reference(app)
    groups: dict[tuple[str, date], list[Ev]] = defaultdict(list)
    for e in EVENTS:
        if e.app == app:
            groups[(persons.get(e.distinct_id, e.distinct_id), e.day)].append(e)
    # persons are counted by the keys of their ids
    return {(id_key(person), day): summary(v) for (person, day), v in groups.items()}


@pytest.mark.parametrize("app", sorted(ZONES))
def test_person_days_match_reference(store: DuckDBEventStore, app: str) -> None:
    sql = f"SELECT person_id, day, {FIELDS} FROM ({person_days_sql(store.dialect, '$app')}) t"
    got = rows_by_key(store.query(sql, {"app": app}).to_pylist(), "person_id", "day")
    assert got == person_days_reference(app)


def test_anonymous_days_count_under_the_user(store: DuckDBEventStore) -> None:
    sql = f"SELECT person_id, day FROM ({person_days_sql(store.dialect, '$app')}) t"
    rows = store.query(sql, {"app": "sh"}).to_pylist()
    days_of: dict[int, set[date]] = defaultdict(set)
    for r in rows:
        days_of[r["person_id"]].add(r["day"])
    assert id_key("dev-9") not in days_of  # one person, not two
    assert days_of[id_key("u-9")] == {date(2026, 11, 10), date(2026, 11, 12), date(2026, 11, 13)}
    # the later link of dev-9 to u-other lost: u-other has only its own day
    assert days_of[id_key("u-other")] == {date(2026, 11, 14)}


@pytest.mark.parametrize(
    ("app", "last_day"),
    [("sh", date(2026, 11, 20)), ("sh", date(2026, 11, 13)), ("ny", date(2026, 11, 1))],
)
def test_headline_matches_reference(store: DuckDBEventStore, app: str, last_day: date) -> None:
    first_day = last_day - timedelta(days=29)
    days = person_days_reference(app)
    inside = {k: v for k, v in days.items() if first_day <= k[1] <= last_day}
    h = headline(store, app, last_day)
    assert (h.first_day, h.last_day) == (first_day, last_day)
    assert h.mau == len({person for person, _ in inside})
    assert h.mean_dau == pytest.approx(len(inside) / 30)
    assert h.events == sum(v["events"] for v in inside.values())
    assert h.visits == sum(v["visits"] for v in inside.values())
    assert h.orders == sum(v["orders"] for v in inside.values())
    assert h.revenue == sum((v["amount"] for v in inside.values()), Decimal("0"))


def test_headline_defaults_to_the_latest_day(store: DuckDBEventStore) -> None:
    latest = max(e.day for e in EVENTS if e.app == "sh")
    assert latest == date(2026, 11, 21)
    assert headline(store, "sh").last_day == latest
    edge = headline(store, "sh", date(2026, 11, 20))
    # dev-edge-in (10-22 00:00 local) counts, dev-edge-out (10-21 23:59:59) does not
    window = person_days_reference("sh")
    people = {p for p, d in window if date(2026, 10, 22) <= d <= date(2026, 11, 20)}
    assert id_key("dev-edge-in") in people and id_key("dev-edge-out") not in people
    assert edge.mau == len(people)
