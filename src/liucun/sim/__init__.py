"""liucun.sim: a seeded, vectorised generator of realistic mini-program behaviour.

Demo data and a test oracle: `simulate` yields event chunks, `ground_truth` gives the traits
behind them (one row per user), `write_simulation` writes both to Parquet. See `config` for
the definitions of days, users, visit rates and churn.
"""

from liucun.sim.config import BOT_TYPE, DEVICE_CLASSES, USER_TYPES, SimConfig
from liucun.sim.industries import INDUSTRIES
from liucun.sim.run import SimSummary, ground_truth, simulate, write_simulation
from liucun.sim.schema import GROUND_TRUTH_SCHEMA, SIM_EVENT_SCHEMA

__all__ = [
    "BOT_TYPE",
    "DEVICE_CLASSES",
    "GROUND_TRUTH_SCHEMA",
    "INDUSTRIES",
    "SIM_EVENT_SCHEMA",
    "USER_TYPES",
    "SimConfig",
    "SimSummary",
    "ground_truth",
    "simulate",
    "write_simulation",
]
