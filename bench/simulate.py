"""Time `liucun.sim.simulate`: median events per second over a few runs.

    python bench/simulate.py [--events 10000000] [--runs 3] [--days 90] [--industry ecommerce]

The number of users is scaled from a small calibration run so that one run makes about the
requested number of events. Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from liucun.sim import SimConfig, simulate

CALIBRATION_USERS = 2_000


def count_events(config: SimConfig) -> int:
    return sum(chunk.num_rows for chunk in simulate(config))


def users_for(events: int, days: int, industry: str, seed: int) -> int:
    """Users needed for about `events` events, from a small run's events per user."""
    probe = SimConfig(users=CALIBRATION_USERS, days=days, industry=industry, seed=seed)
    per_user = count_events(probe) / CALIBRATION_USERS
    return max(1, round(events / per_user))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--industry", default="ecommerce")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    users = users_for(args.events, args.days, args.industry, args.seed)
    config = SimConfig(users=users, days=args.days, industry=args.industry, seed=args.seed)
    print(f"users={users:,} days={args.days} industry={args.industry}")
    rates, total = [], 0
    for run in range(1, args.runs + 1):
        began = time.perf_counter()
        total = count_events(config)
        seconds = time.perf_counter() - began
        rates.append(total / seconds)
        print(f"run {run}: {total:,} events in {seconds:.2f} s = {total / seconds:,.0f} events/s")
    print(f"total events per run: {total:,}")
    print(f"median: {statistics.median(rates):,.0f} events/s")


if __name__ == "__main__":
    main()
