"""The reactions queue between ingest and loyalty, on both state stores: batches drained by
several drainers at once award what one synchronous pass would (checked against a plain-Python
reference), a failing batch stays with its error and is retried after a back-off, a drainer
that died leaves its batches to another, and the server drains on its own."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from liucun.loyalty.pending import LEASE, claim, drain, enqueue, queue_state
from liucun.loyalty.programme import Programme
from tests.loyalty_helpers import loyalty_server
from tests.test_loyalty_reactions import balance, bj, ev, programme

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _orders(rng: random.Random, batches: int) -> list[list[dict[str, Any]]]:
    """Batches of paid orders by 12 users on the 20th (no member day), some delivered twice;
    at most 5 orders of < 100 yuan a user, so that no one reaches a level with a multiplier."""
    sent: list[dict[str, Any]] = []
    out = []
    orders_of: dict[str, int] = defaultdict(int)
    for b in range(batches):
        batch = []
        for _ in range(rng.randint(1, 6)):
            if sent and rng.random() < 0.25:
                batch.append(dict(rng.choice(sent)))  # a re-sent event: same id
                continue
            user = f"u{rng.randrange(12)}"
            if orders_of[user] == 5:
                continue
            orders_of[user] += 1
            amount = rng.randrange(1, 10_000) / 100
            e = ev("order_paid", user, bj(2026, 11, 20, 10), amount, f"o{b}-{len(batch)}")
            batch.append(e)
            sent.append(e)
        out.append(batch)
    return out


def _reference_points(batches: list[list[dict[str, Any]]]) -> dict[str, int]:
    """1 point a yuan, rounded down in fen, once per order."""
    points: dict[str, int] = defaultdict(int)
    seen: set[str] = set()
    for batch in batches:
        for e in batch:
            if e["properties"]["order_id"] in seen:
                continue
            seen.add(e["properties"]["order_id"])
            points[e["user_id"]] += round(e["amount"] * 100) // 100
    return dict(points)


def test_concurrent_drainers_award_each_order_once(engine: sa.Engine) -> None:
    prog = programme(engine)
    batches = _orders(random.Random(7), 40)
    for batch in batches:
        enqueue(engine, prog.app_id, batch, True, NOW)
    assert queue_state(engine, prog.app_id).batches == 40

    def programme_of(app_id: str) -> Programme:
        assert app_id == prog.app_id
        return prog

    done: list[int] = []

    def drainer() -> None:
        done.append(drain(engine, programme_of, lambda: NOW))

    threads = [threading.Thread(target=drainer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(done) == 40  # each batch left the queue once
    assert queue_state(engine, prog.app_id).batches == 0
    expected = _reference_points(batches)
    assert {u: balance(engine, prog, u) for u in expected} == expected


def test_a_failing_batch_stays_with_its_error_and_is_retried_later(engine: sa.Engine) -> None:
    prog = programme(engine)
    enqueue(engine, prog.app_id, [ev("order_paid", "u1", bj(2026, 11, 20), 12.5, "o1")], True, NOW)
    broken = True

    def programme_of(_app_id: str) -> Programme:
        if broken:
            raise RuntimeError("playbook store unreachable")
        return prog

    assert drain(engine, programme_of, lambda: NOW) == 0
    state = queue_state(engine, prog.app_id)
    assert (state.batches, state.failing) == (1, 1)
    assert state.last_error == "RuntimeError: playbook store unreachable"
    broken = False
    # backed off: not tried again at once (first failure waits 2 s)
    assert drain(engine, programme_of, lambda: NOW + timedelta(seconds=1)) == 0
    assert drain(engine, programme_of, lambda: NOW + timedelta(seconds=3)) == 1
    assert queue_state(engine, prog.app_id).batches == 0
    assert balance(engine, prog, "u1") == 12


def test_a_dead_drainers_batches_go_to_another_after_its_lease(engine: sa.Engine) -> None:
    prog = programme(engine)
    enqueue(engine, prog.app_id, [ev("order_paid", "u1", bj(2026, 11, 20), 30, "o1")], True, NOW)
    assert len(claim(engine, NOW)) == 1  # claimed, then the drainer dies
    assert drain(engine, lambda _: prog, lambda: NOW + LEASE - timedelta(seconds=1)) == 0
    assert drain(engine, lambda _: prog, lambda: NOW + LEASE) == 1
    assert balance(engine, prog, "u1") == 30


def test_untrusted_batches_keep_their_mark_through_the_queue(engine: sa.Engine) -> None:
    prog = programme(engine)
    order = ev("order_paid", "u1", bj(2026, 11, 20), 50, "o1")
    enqueue(engine, prog.app_id, [order], False, NOW)
    assert drain(engine, lambda _: prog, lambda: NOW) == 1
    assert balance(engine, prog, "u1") == 0  # a client's order earns nothing
    enqueue(engine, prog.app_id, [order], True, NOW)  # the backend sends it
    assert drain(engine, lambda _: prog, lambda: NOW) == 1
    assert balance(engine, prog, "u1") == 50


def test_the_server_drains_the_queue_on_its_own(tmp_path: Path, state_url: str) -> None:
    with loyalty_server(tmp_path, state_url, NOW) as srv:
        backend = {
            "Authorization": f"Bearer {srv.creds.write_key}",
            "X-Admin-Token": srv.creds.admin_token,
        }
        order = {
            "event_id": str(uuid.uuid4()),
            "event": "order_paid",
            "user_id": "u1",
            "ts": "2026-11-20T01:00:00Z",
            "amount": 66.6,
            "properties": {"order_id": "o-1"},
        }
        r = srv.client.post("/v1/batch", json={"batch": [order]}, headers=backend)
        assert r.status_code == 200, r.text
        admin = {"Authorization": f"Bearer {srv.creds.admin_token}"}
        path = f"/admin/v1/apps/{srv.creds.app_id}/loyalty/pending"
        deadline = time.monotonic() + 60
        while (pending := srv.client.get(path, headers=admin).json())["batches"]:
            assert time.monotonic() < deadline, pending
            time.sleep(0.05)
        assert pending == {
            "batches": 0,
            "events": 0,
            "oldest_received_at": None,
            "failing": 0,
            "last_error": None,
        }
        points = srv.client.get("/v1/loyalty/points", headers=srv.user_headers("u1")).json()
        assert points["balance"] == 66


def test_groups_keep_order_and_stay_under_the_event_limit() -> None:
    from liucun.loyalty.pending import GROUP_EVENTS, Claimed, _groups

    sizes = [300, 150, 100, 600, 10, 1, 499, 2]
    apps = ["a", "a", "a", "a", "b", "b", "b", "a"]
    claimed = [
        Claimed(i, app, True, NOW, [{}] * n)
        for i, (app, n) in enumerate(zip(apps, sizes, strict=True))
    ]
    groups = [[c.batch_id for c in g] for g in _groups(claimed)]
    # one app at a time, in order; 300+150 fits, +100 would not; 600 goes alone
    assert groups == [[0, 1], [2], [3], [4, 5], [6], [7]]
    assert all(len(g) == 1 or sum(sizes[i] for i in g) <= GROUP_EVENTS for g in groups)
