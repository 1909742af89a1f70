"""Retention and activity on real data: the CDNOW purchases, against pandas.

`shared/data/cdnow/CDNOW_master.txt` holds every purchase (69,659 rows) of the 23,570 customers
who first bought at CDNOW in the first quarter of 1997, up to 1998-06-30 (Fader, Hardie and Lee,
Marketing Science 24(2), 2005). Each row is imported as one `order_paid` event through the real
validation path (`validate_events`) into a real event store, and liucun's monthly cohorts,
repeat-purchase retention and monthly active buyers are compared, number by number, with a
pandas computation made here from the raw file.

Dates are moved forward by exactly 28 years, because liucun refuses events before 2000-01-01:
1997 becomes 2025 and 1998 becomes 2026. Over 28 years the Gregorian calendar repeats exactly
(7 leap days + 28 × 365 days = 10,227 days = 1,461 weeks, and no century year in between), so
every date keeps its weekday, and months keep their lengths (none of the four years is a leap
year). Each purchase is placed at 12:00 UTC of its day, in an app whose time zone is UTC, so
its app-local day is its date. Several purchases of a customer on one day stay separate events.

The published BG/NBD fit of the paper (on the 1/10 sample, 39-week calibration period ending
1997-09-30: r = 0.243, α = 4.414, a = 0.793, b = 2.426, quoted in the data's README) is
reproduced from the purchase days liucun stores for the sample's customers.

The data directory is found beside the repository (`../shared/data/cdnow`); if it is missing
the tests fail, never skip. Each test runs once per event-store engine in `ENGINES`.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from liucun.analytics.activity import activity
from liucun.analytics.activity_source import Scope, active_days_sql
from liucun.analytics.params import Period, RetentionType
from liucun.analytics.retention import RetentionQuery, retention
from liucun.events.batch import validate_events
from liucun.warehouse.person_keys import id_key
from liucun.warehouse.store import EventStore
from tests.reference_stores import ENGINES, open_store

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow"
MASTER = DATA_DIR / "CDNOW_master.txt"
SAMPLE = DATA_DIR / "CDNOW_sample.txt"

APP = "cdnow"
TZ = "UTC"
SHIFT_YEARS = 28
RECEIVED_AT = datetime(2026, 12, 1, tzinfo=UTC)  # after the last shifted purchase, 2026-06-30
CHUNK = 10_000
NAMESPACE = uuid.UUID("3b0e5c1e-6a4f-4d0b-9d8e-cd0f0c0a1997")

ROWS = 69_659
CUSTOMERS = 23_570
FIRST_DAY = date(2025, 1, 1)  # 1997-01-01
LAST_DAY = date(2026, 6, 30)  # 1998-06-30

# (first_day, last_day, intervals): the whole data; the paper's 39-week calibration period; a
# range with both ends inside a month; fewer intervals than months.
SCOPES = {
    "full": (FIRST_DAY, LAST_DAY, 18),
    "calibration": (FIRST_DAY, date(2025, 9, 30), 18),
    "mid-month": (date(2025, 2, 15), date(2025, 11, 20), 18),
    "6-intervals": (FIRST_DAY, LAST_DAY, 6),
}

# BG/NBD on the 1/10 sample, calibration to 1997-09-30 (39 weeks), as the README quotes it.
BGNBD_PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CALIBRATION_END = date(2025, 9, 30)  # 1997-09-30


def _missing_data_message() -> str:
    return (
        f"CDNOW data not found: expected {MASTER} (the repository's sibling "
        "shared/data/cdnow/ with CDNOW_master.txt, CDNOW_sample.txt and README.md)"
    )


def test_data_directory_is_present() -> None:
    assert MASTER.is_file() and SAMPLE.is_file(), _missing_data_message()


# --------------------------------------------------------------------------- the raw file


@pytest.fixture(scope="module")
def purchases() -> pd.DataFrame:
    """The master file as pandas reads it, one row per purchase, dates shifted 28 years.

    Columns: customer (str), original (Timestamp, the file's date), day (datetime.date, the
    shifted date), month (datetime.date, the first of the shifted day's month), cds, dollars.
    """
    if not MASTER.is_file():
        pytest.fail(_missing_data_message())
    raw = pd.read_csv(MASTER, sep=r"\s+", dtype=str)
    assert list(raw.columns) == ["customer_id", "date", "number_of_cds", "dollar_value"]
    original = pd.to_datetime(raw["date"], format="%Y%m%d")
    shifted = original + pd.DateOffset(years=SHIFT_YEARS)
    return pd.DataFrame(
        {
            "customer": "c" + raw["customer_id"],
            "original": original,
            "day": shifted.dt.date,
            "month": shifted.dt.to_period("M").dt.start_time.dt.date,
            "cds": raw["number_of_cds"].astype(int),
            "dollars": raw["dollar_value"],
        }
    )


# --------------------------------------------------------------------------- the event store


def raw_events() -> list[dict[str, Any]]:
    """One `order_paid` event per line of the master file, read without pandas.

    The event id and order id come from the line number in the file (the header is line 1).
    """
    events = []
    with MASTER.open() as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines[1:], start=2):
        customer_id, day, cds, dollars = line.split()
        year = int(day[:4]) + SHIFT_YEARS
        events.append(
            {
                "event_id": str(uuid.uuid5(NAMESPACE, f"{number}")),
                "event": "order_paid",
                "user_id": f"c{customer_id}",
                "ts": f"{year}-{day[4:6]}-{day[6:]}T12:00:00Z",
                "amount": float(dollars),
                "properties": {"order_id": f"o{number}", "cds": int(cds)},
            }
        )
    return events


@pytest.fixture(scope="module", params=ENGINES)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventStore]:
    """The whole master file imported in chunks of 10,000 events, once per engine."""
    if not MASTER.is_file():
        pytest.fail(_missing_data_message())
    engine: str = request.param
    s = open_store(engine, tmp_path_factory.mktemp(f"cdnow-{engine}"))
    events = raw_events()
    assert len(events) == ROWS
    for offset in range(0, len(events), CHUNK):
        batch = validate_events(events[offset : offset + CHUNK], APP, RECEIVED_AT)
        assert batch.rejected == []
        assert batch.duplicates_in_batch == 0
        s.append(batch.table, {APP: TZ})
    yield s
    s.close()


def test_import_stores_every_purchase(store: EventStore, purchases: pd.DataFrame) -> None:
    assert store.count(APP) == ROWS == len(purchases)
    stored = store.query(
        "SELECT count(DISTINCT event_id) AS ids, count(DISTINCT distinct_id) AS customers, "
        "sum(amount) AS amount, min(ts) AS first, max(ts) AS last FROM events "
        f"WHERE app_id = {store.dialect.param('app')}",
        {"app": APP},
    ).to_pylist()[0]
    assert stored["ids"] == ROWS
    assert stored["customers"] == CUSTOMERS
    # float amounts of two decimals are stored exactly (DECIMAL(18, 2))
    assert stored["amount"] == sum(Decimal(d) for d in purchases["dollars"])
    assert stored["first"] == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert stored["last"] == datetime(2026, 6, 30, 12, tzinfo=UTC)


def customer_of_key(purchases: pd.DataFrame) -> dict[int, str]:
    """Person key → customer id, for every customer (metrics count persons by key)."""
    customers = purchases["customer"].unique()
    keys = {id_key(c): c for c in customers}
    assert len(keys) == len(customers)  # no two customers share a key
    return keys


def test_shift_keeps_weekdays(purchases: pd.DataFrame) -> None:
    days = purchases.drop_duplicates("original")
    shifted = pd.to_datetime(days["day"])
    assert (shifted.dt.day_of_week.to_numpy() == days["original"].dt.day_of_week.to_numpy()).all()
    assert (shifted.dt.day.to_numpy() == days["original"].dt.day.to_numpy()).all()


def test_person_days_match_the_file(store: EventStore, purchases: pd.DataFrame) -> None:
    """The relation every metric starts from: (customer, day, purchases that day)."""
    sql = active_days_sql(store, TZ, "order_paid", "event")
    got = store.query(sql, {"app": APP, "event": "order_paid"}).to_pandas()
    got["customer"] = got["person_id"].map(customer_of_key(purchases))
    got = got.astype({"n": int})
    want = purchases.groupby(["customer", "day"]).size().rename("n").reset_index()
    key = ["customer", "day"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["customer", "day", "n"]], want, check_dtype=False)
    assert int(got["n"].sum()) == ROWS


# --------------------------------------------------------------------------- reference


def month_starts(first: date, last: date) -> list[date]:
    months, m = [], first.replace(day=1)
    while m <= last:
        months.append(m)
        m = date(m.year + m.month // 12, m.month % 12 + 1, 1)
    return months


def months_from(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def reference_retention(
    p: pd.DataFrame,
    first: date,
    last: date,
    intervals: int,
    kind: RetentionType,
    cumulative: bool,
) -> list[tuple[date, int, list[int]]]:
    """Monthly retention from the definition, with start and return event both a purchase.

    Cohorts are the calendar months overlapping [first, last], taken whole: purchases from the
    first of the first month count. first_time: a customer's cohort is the month of their first
    purchase ever (if on or before `last`). recurring: a customer is in the cohort of each month
    with a purchase. counts[k]: members who purchased in the k-th month after the cohort month
    (cumulative: in any of months k … intervals - 1), purchases after `last` not counting.
    """
    months = month_starts(first, last)
    known = p[(p["day"] >= months[0]) & (p["day"] <= last)]
    bought_in: dict[str, set[date]] = known.groupby("customer")["month"].agg(set).to_dict()
    members: dict[date, set[str]] = {m: set() for m in months}
    if kind == RetentionType.first_time:
        first_buy = p.groupby("customer")["day"].min()
        for customer, day in first_buy.items():
            cohort = day.replace(day=1)
            if day <= last and cohort in members:
                members[cohort].add(str(customer))
    else:
        for customer, bought in bought_in.items():
            for m in bought:
                members[m].add(customer)
    out = []
    for i, cohort in enumerate(months):
        observed = min(intervals, len(months) - i)
        counts = [len(members[cohort])]
        for k in range(1, observed):
            wanted = range(k, intervals) if cumulative else range(k, k + 1)
            counts.append(
                sum(
                    1
                    for c in members[cohort]
                    if any(months_from(cohort, m) in wanted for m in bought_in.get(c, ()))
                )
            )
        out.append((cohort, counts[0], counts))
    return out


def liucun_retention(
    store: EventStore, scope_name: str, kind: RetentionType, cumulative: bool
) -> tuple[list[tuple[date, int, list[int]]], tuple[date, date, int]]:
    first, last, intervals = SCOPES[scope_name]
    q = RetentionQuery(Period.month, intervals, kind, "order_paid", "order_paid", cumulative)
    cohorts = retention(store, Scope(APP, TZ, first, last), q)
    return [(c.start, c.size, c.counts) for c in cohorts], (first, last, intervals)


# --------------------------------------------------------------------------- retention


@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_first_purchase_cohorts(
    store: EventStore, purchases: pd.DataFrame, scope_name: str
) -> None:
    got, (first, last, intervals) = liucun_retention(
        store, scope_name, RetentionType.first_time, False
    )
    want = reference_retention(purchases, first, last, intervals, RetentionType.first_time, False)
    assert got == want
    if scope_name == "full":
        sizes = {start: size for start, size, _ in got}
        # the data set: customers whose first purchase was in Q1 1997 (2025 after the shift)
        assert [s for s in sizes if sizes[s]] == [
            date(2025, 1, 1),
            date(2025, 2, 1),
            date(2025, 3, 1),
        ]
        assert sum(sizes.values()) == CUSTOMERS
        assert [len(counts) for _, _, counts in got] == [18 - i for i in range(18)]


@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_first_purchase_cohorts_cumulative(
    store: EventStore, purchases: pd.DataFrame, scope_name: str
) -> None:
    got, (first, last, intervals) = liucun_retention(
        store, scope_name, RetentionType.first_time, True
    )
    want = reference_retention(purchases, first, last, intervals, RetentionType.first_time, True)
    assert got == want
    for _, _, counts in got:  # cumulative counts never rise
        assert all(a >= b for a, b in itertools.pairwise(counts))


@pytest.mark.parametrize("cumulative", [False, True])
@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_recurring_monthly_retention(
    store: EventStore, purchases: pd.DataFrame, scope_name: str, cumulative: bool
) -> None:
    got, (first, last, intervals) = liucun_retention(
        store, scope_name, RetentionType.recurring, cumulative
    )
    want = reference_retention(
        purchases, first, last, intervals, RetentionType.recurring, cumulative
    )
    assert got == want


# --------------------------------------------------------------------------- activity


@pytest.mark.parametrize("scope_name", list(SCOPES))
def test_monthly_and_daily_active_buyers(
    store: EventStore, purchases: pd.DataFrame, scope_name: str
) -> None:
    first, last, _ = SCOPES[scope_name]
    report = activity(store, Scope(APP, TZ, first, last), "order_paid")

    in_range = purchases[(purchases["day"] >= first) & (purchases["day"] <= last)]
    per_month = in_range.groupby("month")["customer"].nunique()
    want_months = []
    for m in month_starts(first, last):
        following = date(m.year + m.month // 12, m.month % 12 + 1, 1)
        complete = m >= first and following - timedelta(days=1) <= last
        want_months.append((m, int(per_month.get(m, 0)), complete))
    assert [(m.month, m.mau, m.complete) for m in report.months] == want_months

    # every daily number too: buyers that day, in the 7 and the 30 days to it
    person_days = purchases[["customer", "day"]].drop_duplicates()
    ordinal = np.array([d.toordinal() for d in person_days["day"]])
    customers = person_days["customer"].to_numpy()
    want_days = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        n = day.toordinal()
        dau, wau, mau = (
            len(np.unique(customers[(ordinal > n - w) & (ordinal <= n)])) for w in (1, 7, 30)
        )
        want_days.append((day, dau, wau, mau, dau / mau if mau else 0.0, 0, 0))
    got_days = [
        (d.day, d.dau, d.wau, d.mau, d.stickiness, d.page_views, d.visits) for d in report.days
    ]
    assert got_days == want_days


# --------------------------------------------------------------------------- published figures


def test_readme_figures(store: EventStore, purchases: pd.DataFrame) -> None:
    """23,570 customers, all first buying in Q1 1997; 69,659 purchases, 1997-01-01…1998-06-30."""
    assert len(purchases) == ROWS == store.count(APP)
    assert purchases["customer"].nunique() == CUSTOMERS
    first_buy = purchases.groupby("customer")["original"].min()
    assert first_buy.min() == pd.Timestamp("1997-01-01")
    assert first_buy.max() <= pd.Timestamp("1997-03-31")
    assert purchases["original"].min() == pd.Timestamp("1997-01-01")
    assert purchases["original"].max() == pd.Timestamp("1998-06-30")

    report = activity(store, Scope(APP, TZ, FIRST_DAY, LAST_DAY), "order_paid")
    active = [d.day for d in report.days if d.dau]
    assert (active[0], active[-1]) == (FIRST_DAY, LAST_DAY)
    cohorts = retention(
        store,
        Scope(APP, TZ, FIRST_DAY, LAST_DAY),
        RetentionQuery(Period.month, 1, RetentionType.first_time, "order_paid", "order_paid"),
    )
    assert sum(c.size for c in cohorts) == CUSTOMERS
    assert sum(c.size for c in cohorts[:3]) == CUSTOMERS


def _rising_log_factorial(base: float, x: np.ndarray) -> np.ndarray:
    """log Γ(base + x) - log Γ(base) for whole numbers x ≥ 0: Σ_{j<x} log(base + j)."""
    table = np.concatenate([[0.0], np.cumsum(np.log(base + np.arange(int(x.max()))))])
    return table[x.astype(int)]


def _bgnbd_log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
) -> float:
    """BG/NBD log-likelihood (Fader, Hardie and Lee 2005, eq. 6), params as logs."""
    r, alpha, a, b = np.exp(params)
    common = (
        _rising_log_factorial(r, x)
        + r * math.log(alpha)
        + _rising_log_factorial(b, x)
        - _rising_log_factorial(a + b, x)
    )
    no_drop = -(r + x) * np.log(alpha + big_t)
    safe = np.where(x > 0, b + x - 1, 1.0)
    dropped = np.where(x > 0, math.log(a) - np.log(safe) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(common + np.logaddexp(no_drop, dropped)))


def _nelder_mead(
    f: Callable[[np.ndarray], float], start: np.ndarray, steps: int = 5000
) -> np.ndarray:
    """Minimise f from `start` (plain Nelder-Mead; no scipy in the project)."""
    pts = [start.astype(float)]
    for i in range(len(start)):
        p = start.astype(float).copy()
        p[i] += 0.2
        pts.append(p)
    vals = [f(p) for p in pts]
    for _ in range(steps):
        order = np.argsort(vals)
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        spread = max(float(np.abs(p - pts[0]).max()) for p in pts[1:])
        if vals[-1] - vals[0] < 1e-10 and spread < 1e-8:
            break
        centre = np.mean(pts[:-1], axis=0)
        reflected = centre + (centre - pts[-1])
        fr = f(reflected)
        if fr < vals[0]:
            expanded = centre + 2 * (centre - pts[-1])
            fe = f(expanded)
            pts[-1], vals[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = reflected, fr
        else:
            contracted = centre + 0.5 * (pts[-1] - centre)
            fc = f(contracted)
            if fc < vals[-1]:
                pts[-1], vals[-1] = contracted, fc
            else:
                pts = [pts[0] + 0.5 * (p - pts[0]) for p in pts]
                vals = [f(p) for p in pts]
    return pts[int(np.argmin(vals))]


def test_bgnbd_fit_on_the_sample_matches_the_paper(
    store: EventStore, purchases: pd.DataFrame
) -> None:
    """The README's published BG/NBD parameters, from the purchase days liucun stores.

    The 1/10 sample's rows are rows of the master file. Per sample customer, over the 39-week
    calibration period: x = days with a purchase after the first one, t_x = weeks from the
    first to the last purchase day, T = weeks from the first purchase to 1997-09-30.
    """
    sample = pd.read_csv(
        SAMPLE,
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "cds", "dollars"],
        dtype=str,
    )
    assert sample["customer_id"].nunique() == sample["sample_id"].nunique() == 2_357
    master_rows = set(
        zip(
            purchases["customer"],
            purchases["original"].dt.strftime("%Y%m%d"),
            purchases["cds"],
            purchases["dollars"].astype(float),
            strict=True,
        )
    )
    sample_rows = zip(
        "c" + sample["customer_id"],
        sample["date"],
        sample["cds"].astype(int),
        sample["dollars"].astype(float),
        strict=True,
    )
    assert all(row in master_rows for row in sample_rows)

    sql = active_days_sql(store, TZ, "order_paid", "event")
    days = store.query(sql, {"app": APP, "event": "order_paid"}).to_pandas()
    days["person_id"] = days["person_id"].map(customer_of_key(purchases))
    days = days[days["person_id"].isin(set("c" + sample["customer_id"]))]
    assert days["person_id"].nunique() == 2_357
    first = days.groupby("person_id")["day"].min()
    calibration = days[days["day"] <= CALIBRATION_END]
    x = (calibration.groupby("person_id").size() - 1).reindex(first.index).to_numpy(float)
    last = calibration.groupby("person_id")["day"].max().reindex(first.index)
    t_x = np.array([(b - a).days / 7 for a, b in zip(first, last, strict=True)])
    big_t = np.array([(CALIBRATION_END - a).days / 7 for a in first])

    fitted = np.exp(_nelder_mead(lambda p: -_bgnbd_log_likelihood(p, x, t_x, big_t), np.zeros(4)))
    got = dict(zip(BGNBD_PUBLISHED, fitted.tolist(), strict=True))
    assert got == pytest.approx(BGNBD_PUBLISHED, abs=1e-3)
