"""liucun.sim: determinism, schema, event rules, and ground truth consistent with the events.

Checks over events are written in plain Python over `to_pylist()` rows, independent of the
simulator's vectorised code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from liucun.events.standard import PLATFORMS, STANDARD_EVENTS
from liucun.sim import (
    GROUND_TRUTH_SCHEMA,
    INDUSTRIES,
    SIM_EVENT_SCHEMA,
    SimConfig,
    ground_truth,
    simulate,
    write_simulation,
)
from liucun.sim import run as sim_run
from liucun.warehouse.schema import EVENT_ARROW_SCHEMA

Row = dict[str, Any]

SMALL = SimConfig(users=500, days=14, seed=7, bot_share=0.02)


def _events(config: SimConfig) -> pa.Table:
    return pa.concat_tables(list(simulate(config)))


def _digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _local_date(row: Row, timezone: str) -> dt.date:
    ts: dt.datetime = row["ts"]
    return ts.astimezone(ZoneInfo(timezone)).date()


def _by_user(rows: list[Row]) -> dict[str, list[Row]]:
    users: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        users[row["anonymous_id"]].append(row)
    return users


def _sessions(rows: list[Row]) -> dict[str, list[Row]]:
    sessions: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        sessions[row["session_id"]].append(row)
    return sessions


@pytest.fixture(scope="module")
def small_events() -> pa.Table:
    return _events(SMALL)


@pytest.fixture(scope="module")
def rows(small_events: pa.Table) -> list[Row]:
    return small_events.to_pylist()


@pytest.fixture(scope="module")
def truth() -> dict[str, Row]:
    table = ground_truth(SMALL)
    assert table.schema == GROUND_TRUTH_SCHEMA
    return {row["anonymous_id"]: row for row in table.to_pylist()}


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_events(small_events: pa.Table) -> None:
    again = _events(SMALL)
    assert again["event_id"].equals(small_events["event_id"])
    assert _digest(again) == _digest(small_events)


def test_different_seed_gives_different_events(small_events: pa.Table) -> None:
    other = _events(SimConfig(users=500, days=14, seed=8, bot_share=0.02))
    assert not set(other["event_id"].to_pylist()) & set(small_events["event_id"].to_pylist())
    assert _digest(other) != _digest(small_events)


def test_ground_truth_is_deterministic() -> None:
    assert ground_truth(SMALL).equals(ground_truth(SMALL))


# --- schema and event rules ------------------------------------------------------------------


def test_schema_is_the_wire_columns_of_the_warehouse_schema() -> None:
    ingest_only = {"app_id", "event_hash", "distinct_id", "received_at"}
    expected = [f for f in EVENT_ARROW_SCHEMA if f.name not in ingest_only]
    assert list(SIM_EVENT_SCHEMA) == expected
    for chunk in simulate(SMALL):
        assert chunk.schema == SIM_EVENT_SCHEMA


def test_every_event_has_its_required_fields(rows: list[Row]) -> None:
    assert rows
    for row in rows:
        rule = STANDARD_EVENTS[row["event"]]
        for name in rule.required:
            assert row[name] is not None, (row["event"], name)
        properties = json.loads(row["properties"])
        assert isinstance(properties, dict)
        for key in rule.required_properties:
            assert key in properties, (row["event"], key)
        assert row["anonymous_id"] and row["session_id"] and row["platform"] in PLATFORMS


def test_event_fields_are_plausible(rows: list[Row]) -> None:
    for row in rows:
        event = row["event"]
        properties = json.loads(row["properties"])
        if event == "app_open":
            assert row["scene"] is not None and row["scene"].isdigit()
        if event == "tap":
            assert 0 <= row["x"] < properties["screen_width"]
            assert 0 <= row["y"] < properties["screen_height"]
        if event == "page_load":
            assert row["load_ms"] > 0
        if event == "page_leave":
            assert row["duration_ms"] > 0
        if event == "subscribe_consent":
            assert properties["result"] in {"accept", "reject", "ban"}
            assert properties["template_id"]
        assert (row["amount"] is not None) == (event == "order_paid")


def test_event_ids_are_unique_uuid4(rows: list[Row]) -> None:
    ids = [row["event_id"] for row in rows]
    assert len(set(ids)) == len(ids)
    for value in ids[:: max(1, len(ids) // 500)]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4


def test_timestamps_fall_inside_the_window(rows: list[Row]) -> None:
    zone = ZoneInfo(SMALL.timezone)
    begin = dt.datetime.combine(SMALL.start, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(SMALL.end, dt.time(0), tzinfo=zone)
    assert all(begin <= row["ts"] < end for row in rows)


def test_sessions_are_contiguous_and_ordered_in_time(rows: list[Row]) -> None:
    seen: set[str] = set()
    previous = None
    for row in rows:
        if row["session_id"] != previous:
            assert row["session_id"] not in seen, "a session's events must be contiguous"
            seen.add(row["session_id"])
            previous = row["session_id"]
    # sessions stream in order of their start
    opened = [row["ts"] for row in rows if row["event"] == "app_open"]
    assert opened == sorted(opened)
    for events in _sessions(rows).values():
        times = [e["ts"] for e in events]
        assert all(a < b for a, b in itertools.pairwise(times))
        names = [e["event"] for e in events]
        assert names[0] == "app_open" and names[-1] == "app_hide"
        # first-screen load: exactly one page_load, on the session's first page
        assert names.count("page_load") == 1
        assert names[1 + (names[1] == "identify")] == "page_load"
        assert len({e["anonymous_id"] for e in events}) == 1


def test_page_views_follow_the_path(rows: list[Row]) -> None:
    for events in _sessions(rows).values():
        views = [e for e in events if e["event"] == "page_view"]
        assert views[0]["referrer_page"] is None
        for before, after in itertools.pairwise(views):
            assert after["referrer_page"] == before["page"]


def test_orders_are_exact_positive_and_unique(rows: list[Row]) -> None:
    orders = [row for row in rows if row["event"] == "order_paid"]
    assert orders
    for row in orders:
        amount: Decimal = row["amount"]
        assert amount > 0 and amount.as_tuple().exponent == -2
    order_ids = [json.loads(row["properties"])["order_id"] for row in orders]
    assert len(set(order_ids)) == len(order_ids)


def test_identify_splits_anonymous_and_known_events(rows: list[Row], truth: dict[str, Row]) -> None:
    for anonymous_id, events in _by_user(rows).items():
        user_id = truth[anonymous_id]["user_id"]
        identifies = [e for e in events if e["event"] == "identify"]
        if user_id is None:
            assert not identifies
            assert all(e["user_id"] is None for e in events)
            continue
        assert len(identifies) == 1 and identifies[0]["user_id"] == user_id
        login = identifies[0]["ts"]
        for event in events:
            assert event["user_id"] == (user_id if event["ts"] >= login else None)


# --- ground truth ----------------------------------------------------------------------------


def test_truth_has_one_row_per_user(rows: list[Row], truth: dict[str, Row]) -> None:
    assert len(truth) == SMALL.users
    assert sum(row["is_bot"] for row in truth.values()) == round(SMALL.users * SMALL.bot_share)
    # every user arrives with a session on their first day
    for anonymous_id, events in _by_user(rows).items():
        first = min(_local_date(e, SMALL.timezone) for e in events)
        assert first == truth[anonymous_id]["first_day"]
    assert set(_by_user(rows)) == set(truth)


def test_bots_show_the_bot_pattern(rows: list[Row], truth: dict[str, Row]) -> None:
    users = _by_user(rows)
    bots = [a for a, row in truth.items() if row["is_bot"]]
    assert bots
    human_opens = [
        sum(e["event"] == "app_open" for e in users[a])
        for a, row in truth.items()
        if not row["is_bot"]
    ]
    for anonymous_id in bots:
        events = users[anonymous_id]
        names = Counter(e["event"] for e in events)
        assert truth[anonymous_id]["orders"] == 0 and truth[anonymous_id]["user_id"] is None
        assert names["order_paid"] == 0 and names["identify"] == 0
        # one page per short session, every tap on the same pixel
        assert names["page_view"] == names["app_open"]
        assert len({(e["x"], e["y"]) for e in events if e["event"] == "tap"}) <= 1
        assert all(e["duration_ms"] < 2_500 for e in events if e["event"] == "page_leave")
        assert names["app_open"] > sorted(human_opens)[len(human_opens) // 2]

    def night_share(is_bot: bool) -> float:
        opens = [
            r["ts"].astimezone(ZoneInfo(SMALL.timezone)).hour
            for r in rows
            if r["event"] == "app_open" and truth[r["anonymous_id"]]["is_bot"] == is_bot
        ]
        return sum(hour < 6 for hour in opens) / len(opens)

    # scripts run at odd hours
    assert night_share(True) > 3 * night_share(False)


def test_churned_users_have_no_events_from_their_churn_day(
    rows: list[Row], truth: dict[str, Row]
) -> None:
    churned = 0
    for anonymous_id, events in _by_user(rows).items():
        churn_day = truth[anonymous_id]["churn_day"]
        if churn_day is not None:
            churned += 1
            assert max(_local_date(e, SMALL.timezone) for e in events) < churn_day
    assert churned > 0


def test_one_time_users_visit_at_most_twice(rows: list[Row], truth: dict[str, Row]) -> None:
    for anonymous_id, events in _by_user(rows).items():
        if truth[anonymous_id]["user_type"] == "one_time":
            assert 1 <= sum(e["event"] == "app_open" for e in events) <= 2


def test_truth_orders_and_revenue_match_the_events(rows: list[Row], truth: dict[str, Row]) -> None:
    counts: Counter[str] = Counter()
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row["event"] == "order_paid":
            counts[row["anonymous_id"]] += 1
            revenue[row["anonymous_id"]] += row["amount"]
    for anonymous_id, row in truth.items():
        assert row["orders"] == counts[anonymous_id]
        assert row["revenue"] == revenue[anonymous_id]


def test_slow_first_screen_raises_churn() -> None:
    table = ground_truth(SimConfig(users=5_000, days=60, seed=11)).to_pylist()
    humans = [r for r in table if not r["is_bot"]]

    def churn_share(device: str) -> tuple[float, int]:
        group = [r["churn_day"] is not None for r in humans if r["device_class"] == device]
        return sum(group) / len(group), len(group)

    slow, n_slow = churn_share("low")
    fast, n_fast = churn_share("high")
    pooled = (slow * n_slow + fast * n_fast) / (n_slow + n_fast)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / n_slow + 1 / n_fast))
    assert slow - fast > 3 * standard_error


@pytest.mark.parametrize("weekend_factor", [1.6, 0.6])
def test_weekends_differ_from_weekdays_as_configured(weekend_factor: float) -> None:
    config = SimConfig(users=3_000, days=56, seed=5, bot_share=0.0, weekend_factor=weekend_factor)
    truth = {r["anonymous_id"]: r for r in ground_truth(config).to_pylist()}
    # rate-driven visits only: arrival-day and one_time visits are scheduled, not seasonal
    opens: Counter[dt.date] = Counter()
    for chunk in simulate(config):
        for row in chunk.filter(pc.equal(chunk["event"], "app_open")).to_pylist():
            user, day = truth[row["anonymous_id"]], _local_date(row, config.timezone)
            if user["user_type"] != "one_time" and day != user["first_day"]:
                opens[day] += 1
    # each weekend against Thu, Fri before and Mon, Tue after it: symmetric, so the growth of
    # the user base over the window cancels out
    ratios = []
    for offset in range(config.days):
        saturday = config.start + dt.timedelta(days=offset)
        around = [saturday + dt.timedelta(days=k) for k in (-2, -1, 2, 3)]
        if saturday.weekday() != 5 or around[0] < config.start or around[-1] >= config.end:
            continue
        weekend = (opens[saturday] + opens[saturday + dt.timedelta(days=1)]) / 2
        ratios.append(weekend / (sum(opens[d] for d in around) / 4))
    assert len(ratios) >= 6
    assert sum(ratios) / len(ratios) == pytest.approx(weekend_factor, rel=0.1)


# --- chunks, files, time zones ---------------------------------------------------------------


def test_large_days_are_split_into_chunks(
    small_events: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim_run, "MAX_CHUNK_ROWS", 1_000)
    chunks = list(simulate(SMALL))
    assert all(chunk.num_rows <= 1_000 for chunk in chunks)
    assert pa.concat_tables(chunks).equals(small_events)


def test_write_simulation_writes_events_and_truth(small_events: pa.Table, tmp_path: Any) -> None:
    calls: list[tuple[int, int]] = []
    summary = write_simulation(SMALL, tmp_path / "out", lambda d, t: calls.append((d, t)))
    assert calls == [(d, SMALL.days) for d in range(1, SMALL.days + 1)]
    events = pq.read_table(summary.events_path)
    truth_table = pq.read_table(summary.ground_truth_path)
    assert events.schema == SIM_EVENT_SCHEMA and truth_table.schema == GROUND_TRUTH_SCHEMA
    assert events.equals(small_events)
    assert truth_table.equals(ground_truth(SMALL))
    assert summary.events == events.num_rows and summary.users == SMALL.users
    assert summary.bots == round(SMALL.users * SMALL.bot_share)
    assert summary.orders == sum(truth_table["orders"].to_pylist())


def test_days_follow_the_local_calendar_across_dst() -> None:
    # New York leaves daylight saving on 2026-11-01: that day has 25 hours
    config = SimConfig(
        users=300, days=4, start=dt.date(2026, 10, 30), timezone="America/New_York", seed=3
    )
    rows = _events(config).to_pylist()
    truth = {r["anonymous_id"]: r for r in ground_truth(config).to_pylist()}
    for anonymous_id, events in _by_user(rows).items():
        days = [_local_date(e, config.timezone) for e in events]
        assert config.start <= min(days) and max(days) < config.end
        assert min(days) == truth[anonymous_id]["first_day"]
        for events_of_session in _sessions(events).values():
            assert len({_local_date(e, config.timezone) for e in events_of_session}) == 1


def test_config_rejects_unknown_industry_and_bad_mix() -> None:
    with pytest.raises(ValueError):
        SimConfig(industry="casino")
    with pytest.raises(ValueError):
        SimConfig(user_mix={"loyal": 1.0})


@pytest.mark.parametrize("industry", ["education", "tools", "billpay", "finance", "food"])
def test_every_industry_simulates(industry: str) -> None:
    config = SimConfig(users=300, days=7, seed=1, industry=industry)
    events = _events(config)
    assert events.num_rows > 0
    pages = set(events["page"].drop_null().to_pylist())
    assert pages <= set(INDUSTRIES[industry].pages)
