"""The figures the dashboard added to the capabilities, against plain-Python references, on
SQLite and PostgreSQL: the churn-risk distribution, the loyalty overview, D1/D7/D30 pooling."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from liucun.analytics.day_retention import pooled
from liucun.analytics.retention import Cohort
from liucun.lifecycle.risk_distribution import risk_distribution
from liucun.loyalty import coupons as cp
from liucun.loyalty.checkin import check_in
from liucun.loyalty.overview import loyalty_overview
from liucun.loyalty.points import award_points, spend_points
from liucun.loyalty.programme import programme_of
from liucun.state.apps import create_app, find_app
from liucun.state.tables import churn_scores, visit_days

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def test_risk_distribution_counts_each_score_in_its_band(engine: sa.Engine) -> None:
    app = create_app(engine, "risky", "Asia/Shanghai")
    rng = random.Random(7)
    risks = [rng.random() for _ in range(300)] + [0.0, 0.1, 0.3, 0.7, 0.9, 1.0]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            churn_scores.insert(),
            [
                {
                    "app_id": app.app_id,
                    "person_id": f"p{i}",
                    "as_of": date(2026, 11, 30),
                    "model_id": "m",
                    "risk": r,
                    "previous_risk": None,
                    "reasons": "[]",
                    "scored_at": now,
                }
                for i, r in enumerate(risks)
            ],
        )
    got = risk_distribution(engine, app.app_id, 10, 0.7)
    expected = [0] * 10
    for r in risks:  # band i holds i/10 <= r < (i+1)/10; a risk of 1 is in the last band
        expected[min(int(round(r * 10, 9)), 9)] += 1
    assert [b["persons"] for b in got["bins"]] == expected
    assert got["persons"] == len(risks) and got["as_of"] == "2026-11-30"
    assert got["high_risk"] == sum(r >= 0.7 for r in risks)
    empty = risk_distribution(engine, create_app(engine, "calm", "UTC").app_id, 4, 0.7)
    assert empty["persons"] == 0 and empty["as_of"] is None
    assert [b["persons"] for b in empty["bins"]] == [0, 0, 0, 0]


def test_loyalty_overview_cuts_days_at_local_midnight(engine: sa.Engine) -> None:
    app = find_app(engine, create_app(engine, "shop", "Asia/Shanghai").app_id)
    prog = programme_of(engine, app)
    d1, d2 = date(2026, 11, 10), date(2026, 11, 11)
    # one minute either side of local midnight: two different local days, one UTC day
    award_points(engine, prog, "a", 100, "k1", local(d1, 23, 59), "test")
    award_points(engine, prog, "a", 50, "k2", local(d2, 0, 1), "test")
    spend_points(engine, prog, "a", 30, "k3", local(d2, 10), "test")
    earned_by_checkin = {}
    for day in (d1, d2):
        done = check_in(engine, prog, "b", local(day, 12))
        earned_by_checkin[day] = done["points"] + sum(r["points"] for r in done["rewards"])
    issued = cp.claim_coupon(engine, prog, "c", "points_5", "c1", local(d2, 9)).result
    cp.claim_coupon(engine, prog, "d", "points_5", "c2", local(d2, 9))
    cp.redeem_coupon(
        engine, prog, "c", issued["coupon_id"], "order-1", "r1", local(d2, 9, 30), 60_00
    )
    progress = {"u1": 1, "u2": 3, "u3": 5}  # visit days in November
    with engine.begin() as conn:
        conn.execute(
            visit_days.insert(),
            [
                {"app_id": app.app_id, "user_id": u, "day": date(2026, 11, 1 + k), "visits": 2}
                for u, n in progress.items()
                for k in range(n)
            ],
        )

    got = loyalty_overview(engine, prog, d1 - timedelta(days=1), d2, local(d2, 23))
    by_day = {d["day"]: d for d in got["days"]}
    assert list(by_day) == ["2026-11-09", "2026-11-10", "2026-11-11"]
    assert by_day["2026-11-09"]["issued"] == 0
    assert by_day["2026-11-10"]["issued"] == 100 + earned_by_checkin[d1]
    assert by_day["2026-11-11"]["issued"] == 50 + earned_by_checkin[d2]
    assert by_day["2026-11-11"]["spent"] == 30 and by_day["2026-11-10"]["spent"] == 0
    assert [by_day[k]["checkins"] for k in sorted(by_day)] == [0, 1, 1]
    assert got["totals"]["spent"] == 30
    # new members also get the new-user pack's coupons: count every coupon row in Python
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(cp.coupons.c.status, cp.coupons.c.issued_at).where(
                cp.coupons.c.app_id == app.app_id
            )
        ).all()
    in_span = [
        s
        for s, at in rows
        if d1 - timedelta(days=1)
        <= at.replace(tzinfo=at.tzinfo or UTC).astimezone(SHANGHAI).date()
        <= d2
    ]
    assert got["coupons"]["issued"] == len(in_span) >= 2
    assert got["coupons"]["redeemed"] == in_span.count("redeemed") == 1
    assert got["coupons"]["unused"] == in_span.count("issued")
    ladder = got["ladder"]
    assert ladder["month"] == "2026-11" and ladder["members"] == 3
    assert ladder["progress"] == [{"progress": n, "members": 1} for n in (1, 3, 5)]
    for step in ladder["steps"]:
        assert step["reached"] == sum(n >= step["visit"] for n in progress.values())
    assert sum(t["members"] for t in got["levels"]) == 4  # a, b, c, d


def test_day_retention_pools_cohorts_old_enough() -> None:
    start = date(2026, 11, 1)
    cohorts = [
        Cohort(start, 10, [10, 5, 4, 3, 3, 3, 3, 2]),  # reaches D7
        Cohort(start + timedelta(days=1), 30, [30, 6, 5]),  # too young for D7
        Cohort(start + timedelta(days=2), 0, [0, 0]),  # empty: weighs nothing
        Cohort(start + timedelta(days=3), 5, [5]),  # too young for D1
    ]
    d1, d7, d30 = (pooled(cohorts, k) for k in (1, 7, 30))
    assert (d1.retained, d1.cohort_users, d1.cohorts) == (11, 40, 2)
    assert d1.rate == 11 / 40
    assert (d7.retained, d7.cohort_users, d7.rate) == (2, 10, 0.2)
    assert d30.rate is None and d30.cohorts == 0
