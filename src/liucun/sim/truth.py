"""The ground truth: one row per simulated user with the traits that generated their events.

Orders and revenue are counted from the day plans as they are drawn, so they equal what the
events show; `user_id` is set only for users whose login session happened within the window.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from liucun.sim.arrow_columns import amounts_from_fen, masked, take_strings
from liucun.sim.config import BOT_TYPE, DEVICE_CLASSES, USER_TYPES, SimConfig
from liucun.sim.plan import DayPlan, UserState
from liucun.sim.population import Population
from liucun.sim.schema import GROUND_TRUTH_SCHEMA

_EPOCH_DATE = dt.date(1970, 1, 1)


class TruthLedger:
    """Per-user tallies of orders and revenue (fen), fed one day plan at a time."""

    def __init__(self, users: int) -> None:
        self.orders = np.zeros(users, dtype=np.int64)
        self.revenue_fen = np.zeros(users, dtype=np.int64)

    def record(self, plan: DayPlan) -> None:
        buyers = plan.order_users
        np.add.at(self.orders, buyers, 1)
        np.add.at(self.revenue_fen, buyers, plan.order_fen)

    def table(self, config: SimConfig, population: Population, state: UserState) -> pa.Table:
        """The ground-truth table (GROUND_TRUTH_SCHEMA), users in population order."""
        n = population.size
        start_days = (config.start - _EPOCH_DATE).days
        churned = population.churn_day < config.days
        logged_in = state.sessions > population.login_at
        kinds = pa.array([*USER_TYPES, BOT_TYPE], pa.string())
        devices = pa.array(DEVICE_CLASSES, pa.string())
        columns = [
            population.anonymous_ids,
            take_strings(population.user_ids, np.arange(n), logged_in),
            take_strings(kinds, population.kind),
            take_strings(pa.array([config.industry], pa.string()), np.zeros(n, dtype=np.int64)),
            take_strings(devices, population.device),
            pa.array(population.is_bot),
            _dates(start_days + population.first_day, None),
            _dates(start_days + population.churn_day, churned),
            pa.array(population.mean_load_ms),
            pa.array(population.visit_rate),
            pa.array(population.uplift),
            pa.array(self.orders),
            amounts_from_fen(self.revenue_fen, None),
        ]
        return pa.Table.from_arrays(columns, schema=GROUND_TRUTH_SCHEMA)


def _dates(
    days_since_epoch: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_] | None
) -> pa.Array:
    values = np.where(valid, days_since_epoch, 0) if valid is not None else days_since_epoch
    return masked(values.astype(np.int32), valid, pa.date32())
