"""The same events give the same numbers on every event store: each metric kind, with its
options, on a simulated app, compared answer for answer (JSON, exactly) across the engines.

The reference tests check each engine against plain Python on small cases; this one checks the
engines against each other on a realistic population (identify links, platforms, scenes,
dwell, taps and loads), where a difference of rounding or of tie order would show.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from liucun.analytics.metrics import compute
from liucun.analytics.params import MetricParams
from liucun.events.columnar import complete_table
from liucun.sim import SimConfig, simulate
from liucun.state.apps import App
from liucun.warehouse.store import EventStore
from tests.reference_stores import ENGINES, open_store

TZ = "Asia/Shanghai"
APP = App("app_same", "same", TZ, "wk_unused")
START = date(2026, 9, 1)
RANGE = {"from": "2026-09-01", "to": "2026-10-10"}

CASES: list[tuple[str, dict[str, Any]]] = [
    ("active", {}),
    ("active", {"event": "any"}),
    ("mau-report", {"to": "2026-10-10"}),
    ("retention", {}),
    ("retention", {"period": "week", "intervals": 5, "type": "recurring"}),
    ("retention", {"period": "month", "intervals": 2, "cumulative": True}),
    ("lifecycle", {"period": "week"}),
    ("stickiness", {"period": "week"}),
    ("funnel", {"steps": "app_open,page_view,order_paid", "window": "1d"}),
    ("funnel", {"steps": "app_open,page_view,order_paid", "window": "1d", "order": "strict"}),
    ("funnel", {"steps": "page_view,order_paid,app_open", "window": "7d", "order": "any"}),
    ("funnel", {"steps": "app_open,order_paid", "window": "1d", "breakdown": "platform"}),
    ("exits", {}),
    ("paths", {}),
    ("features", {}),
    ("dwell", {}),
    ("heatmap", {"page": "pages/home"}),
    ("performance", {}),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EventStore]]:
    config = SimConfig(users=1_500, days=40, seed=11, timezone=TZ, start=START)
    received = datetime(2026, 10, 11, tzinfo=UTC)
    opened = {e: open_store(e, tmp_path_factory.mktemp(f"same-{e}")) for e in ENGINES}
    for chunk in simulate(config):
        table = complete_table(chunk, APP.app_id, received)
        for store in opened.values():
            store.append(table, {APP.app_id: TZ})
    yield opened
    for store in opened.values():
        store.close()


@pytest.mark.parametrize(
    ("kind", "options"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)]
)
def test_every_engine_gives_the_same_answer(
    stores: dict[str, EventStore], kind: str, options: dict[str, Any], tmp_path: Path
) -> None:
    params = MetricParams.model_validate({**RANGE, **options})
    answers = {engine: compute(store, APP, kind, params) for engine, store in stores.items()}
    first = answers[ENGINES[0]]
    assert first, f"{kind} gave nothing to compare"
    for engine in ENGINES[1:]:
        assert answers[engine] == first, engine
