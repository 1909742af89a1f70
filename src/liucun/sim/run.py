"""Running a simulation: event chunks, the ground truth, and both written to Parquet.

Randomness comes from independent streams keyed by (seed, stream, day): the population, each
day's plan and each day's rendering. So the ground truth (plans only) equals what the events
show without rendering them, and the same config always gives byte-identical output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from liucun.sim.clock import SimClock
from liucun.sim.config import SimConfig
from liucun.sim.plan import DayPlan, UserState, plan_day
from liucun.sim.population import Population, draw_population
from liucun.sim.render import render_day
from liucun.sim.schema import SIM_EVENT_SCHEMA
from liucun.sim.truth import TruthLedger

# a day with more events than this is yielded in several chunks
MAX_CHUNK_ROWS = 1_000_000
EVENTS_FILE = "events.parquet"
GROUND_TRUTH_FILE = "ground_truth.parquet"

_POPULATION_STREAM, _PLAN_STREAM, _RENDER_STREAM = 0, 1, 2

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimSummary:
    """What `write_simulation` wrote: counts and the two files' paths."""

    users: int  # all simulated users, bots included
    bots: int
    events: int
    orders: int
    days: int
    events_path: Path
    ground_truth_path: Path


def _rng(seed: int, stream: int, day: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, day])))


class _Run:
    """One pass over the window: plans each day in order and keeps the ground-truth tallies."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = SimClock.for_window(config.start, config.days, config.timezone)
        self.population: Population = draw_population(config, _rng(config.seed, _POPULATION_STREAM))
        self.state = UserState(np.zeros(self.population.size, dtype=np.int64))
        self.ledger = TruthLedger(self.population.size)

    def plans(self) -> Iterator[DayPlan]:
        """Each day's plan in order; the tallies are complete once this is exhausted."""
        for day in range(self.config.days):
            plan = plan_day(
                day,
                self.config,
                self.population,
                self.clock,
                self.state,
                _rng(self.config.seed, _PLAN_STREAM, day),
            )
            self.ledger.record(plan)
            yield plan

    def render(self, plan: DayPlan) -> pa.Table:
        rng = _rng(self.config.seed, _RENDER_STREAM, plan.day)
        return render_day(plan, self.population, self.config.industry, rng)

    def ground_truth(self) -> pa.Table:
        return self.ledger.table(self.config, self.population, self.state)


def _chunks(table: pa.Table) -> Iterator[pa.Table]:
    for offset in range(0, table.num_rows, MAX_CHUNK_ROWS):
        yield table.slice(offset, MAX_CHUNK_ROWS)


def simulate(config: SimConfig) -> Iterator[pa.Table]:
    """Event chunks (SIM_EVENT_SCHEMA) day by day: one per app-local day, split above 1M rows.

    Days without events yield nothing. Within a chunk, rows are grouped by session (sessions of
    one user together) and time-ordered inside each session; chunks are in day order.
    """
    run = _Run(config)
    for plan in run.plans():
        table = run.render(plan)
        yield from _chunks(table)


def ground_truth(config: SimConfig) -> pa.Table:
    """One row per simulated user (GROUND_TRUTH_SCHEMA), without rendering the events."""
    run = _Run(config)
    for _ in run.plans():
        pass
    return run.ground_truth()


def write_simulation(
    config: SimConfig, out_dir: str | os.PathLike[str], progress: Progress | None = None
) -> SimSummary:
    """Write `events.parquet` and `ground_truth.parquet` into `out_dir` in one pass.

    `progress(done_days, total_days)` is called after each simulated day. Files are written
    under temporary names and renamed at the end, so a failed run leaves no half file behind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events_path, truth_path = out / EVENTS_FILE, out / GROUND_TRUTH_FILE
    events_tmp = events_path.with_suffix(".parquet.tmp")
    truth_tmp = truth_path.with_suffix(".parquet.tmp")
    run = _Run(config)
    events = orders = 0
    with pq.ParquetWriter(events_tmp, SIM_EVENT_SCHEMA) as writer:
        for plan in run.plans():
            table = run.render(plan)
            if table.num_rows:
                writer.write_table(table)
            events += table.num_rows
            orders += len(plan.order_fen)
            if progress is not None:
                progress(plan.day + 1, config.days)
    pq.write_table(run.ground_truth(), truth_tmp)
    os.replace(events_tmp, events_path)
    os.replace(truth_tmp, truth_path)
    return SimSummary(
        users=run.population.size,
        bots=int(run.population.is_bot.sum()),
        events=events,
        orders=orders,
        days=config.days,
        events_path=events_path,
        ground_truth_path=truth_path,
    )
