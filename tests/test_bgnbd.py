"""BG/NBD (Fader, Hardie & Lee 2005) on the real CDNOW data, against the paper and the model.

- The fit on the paper's 1/10 sample (2,357 customers, 39-week calibration to 1997-09-30),
  parsed here straight from the file, gives the published r, α, a, b and log-likelihood.
- The holdout forecast is set beside the purchases made (figures in docs/bgnbd.md).
- P(alive), E[Y(t) | x, t_x, T], E[X(t)] and the likelihood are checked against adaptive
  quadrature of the model's definition (Poisson purchases at rate λ, drop-out with probability
  p after each purchase, λ ~ gamma(r, α), p ~ beta(a, b)), and against Hardie's spreadsheet.
- `buyer_summary` runs on both engines against a plain-Python reading of the same events; the
  sample imported as `order_paid` events gives the same summary and the same fit as the file.
- `liucun churn bgnbd` once with --json, and its exit-2 cases.
"""

from __future__ import annotations

import functools
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest
from scipy.integrate import quad
from typer.testing import CliRunner

from liucun.events.batch import validate_events
from liucun.lifecycle.bgnbd import (
    MIN_BUYERS,
    BGNBDParams,
    expected_purchases,
    expected_purchases_unconditional,
    fit_bgnbd,
    probability_alive,
)
from liucun.lifecycle.buyers import VALUABLE_SHARE, buyer_summary, holdout_purchases
from liucun.warehouse.store import EventStore
from tests.reference_stores import APP, ENGINES, events_store, open_store
from tests.test_cdnow import SAMPLE, raw_events

# The paper's estimates (FHL 2005, on the 1/10 sample, 39-week calibration period).
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOG_LIKELIHOOD = -9582.4
CALIBRATION_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)  # 39 weeks after the calibration end


# --------------------------------------------------------------------------- CDNOW, the file


@functools.cache
def sample_purchases() -> dict[str, dict[date, Decimal]]:
    """customer ("c" + the file's customer id) → purchase day → dollars paid that day, read
    from the sample file with plain Python."""
    out: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in SAMPLE.read_text().splitlines():
        customer, _sample_id, day, _cds, dollars = line.split()
        out[f"c{customer}"][date(int(day[:4]), int(day[4:6]), int(day[6:]))] += Decimal(dollars)
    return out


def histories(
    purchases: dict[str, dict[date, Decimal]], calibration_end: date
) -> dict[str, tuple[int, float, float, float | None, Decimal]]:
    """person → (x, t_x, T, monetary, amount) from the definition: a transaction is a day with
    a purchase; x counts those after the first up to `calibration_end`; weeks are days / 7;
    monetary is the mean of the repeat days' amounts; amount all paid up to the end."""
    out = {}
    for person, days in purchases.items():
        kept = sorted(d for d in days if d <= calibration_end)
        if not kept:
            continue
        first, x = kept[0], len(kept) - 1
        repeat = sum((days[d] for d in kept[1:]), Decimal(0))
        out[person] = (
            x,
            (kept[-1] - first).days / 7,
            (calibration_end - first).days / 7,
            float(repeat / x) if x else None,
            sum((days[d] for d in kept), Decimal(0)),
        )
    return out


def arrays(h: dict[str, tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [h[p] for p in sorted(h)]
    return tuple(np.array([r[i] for r in rows], dtype=float) for i in range(3))  # type: ignore[return-value]


def holdout_counts(
    purchases: dict[str, dict[date, Decimal]], calibration_end: date, holdout_end: date
) -> dict[str, int]:
    """person (a buyer by `calibration_end`) → purchase days in (calibration_end, holdout_end]."""
    return {
        person: sum(1 for d in days if calibration_end < d <= holdout_end)
        for person, days in purchases.items()
        if min(days) <= calibration_end
    }


@functools.cache
def cdnow_fit() -> BGNBDParams:
    return fit_bgnbd(*arrays(histories(sample_purchases(), CALIBRATION_END)))


def test_sample_file_is_the_papers_sample() -> None:
    h = histories(sample_purchases(), CALIBRATION_END)
    x = np.array([v[0] for v in h.values()])
    # 2,357 customers, all first buying in 1997 Q1; 2,457 repeat transactions in calibration
    assert len(h) == 2_357
    assert max(min(days) for days in sample_purchases().values()) <= date(1997, 3, 31)
    assert int(x.sum()) == 2_457 and int((x == 0).sum()) == 1_411


def test_fit_gives_the_published_parameters() -> None:
    """Transactions are purchase days, T runs to the calibration end's date: the paper's r, α,
    a, b within 1% and its log-likelihood −9,582.4 (we measure −9,582.43)."""
    fitted = cdnow_fit()
    got = {"r": fitted.r, "alpha": fitted.alpha, "a": fitted.a, "b": fitted.b}
    assert got == pytest.approx(PUBLISHED, rel=0.01)
    assert fitted.log_likelihood == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.05)
    assert fitted.n == 2_357


def test_counting_every_purchase_misses_the_paper() -> None:
    """The other convention (each row a transaction) is measurably not the paper's."""
    per_row: dict[str, list[date]] = defaultdict(list)
    for line in SAMPLE.read_text().splitlines():
        customer, _, day, _, _ = line.split()
        per_row[customer].append(date(int(day[:4]), int(day[4:6]), int(day[6:])))
    x, t_x, big_t = [], [], []
    for days in per_row.values():
        kept = sorted(d for d in days if d <= CALIBRATION_END)
        x.append(len(kept) - 1)
        t_x.append((kept[-1] - kept[0]).days / 7)
        big_t.append((CALIBRATION_END - kept[0]).days / 7)
    fitted = fit_bgnbd(x, t_x, big_t)
    assert abs(fitted.alpha / PUBLISHED["alpha"] - 1) > 0.1
    assert fitted.log_likelihood < PUBLISHED_LOG_LIKELIHOOD - 100


def test_holdout_forecast_beside_the_actual_count() -> None:
    """Sum over customers of E[Y(39 weeks) | x, t_x, T] against the repeat transactions they
    made in the 39 holdout weeks (1997-10-01 … 1998-06-30).

    Measured: forecast 1,653.4 against 1,882 actual (−12.1%). Cumulative repeat transactions
    from each customer's first purchase to 1998-06-30 (unconditional E[X(t)], 78 weeks):
    4,165.7 forecast against 4,339 actual (−4.0%). The paper reports its forecast tracking
    cumulative repeat sales closely; the tolerances are a little above what we measure.
    """
    fitted = cdnow_fit()
    h = histories(sample_purchases(), CALIBRATION_END)
    weeks = (HOLDOUT_END - CALIBRATION_END).days / 7
    assert weeks == 39
    forecast = float(expected_purchases(fitted, weeks, *arrays(h)).sum())
    actual = sum(holdout_counts(sample_purchases(), CALIBRATION_END, HOLDOUT_END).values())
    assert actual == 1_882
    assert forecast == pytest.approx(actual, rel=0.15)

    firsts = [min(days) for days in sample_purchases().values()]
    spans = np.array([(HOLDOUT_END - f).days / 7 for f in firsts])
    cumulative = float(expected_purchases_unconditional(fitted, spans).sum())
    made = sum(len(days) - 1 for days in sample_purchases().values())
    assert made == 2_457 + 1_882
    assert cumulative == pytest.approx(made, rel=0.05)


def test_hardie_spreadsheet_figures() -> None:
    """Hardie's BG/NBD spreadsheet on the sample (its full-precision estimates, of which the
    paper prints three decimals) gives E[Y(39) | x = 2, t_x = 30.43, T = 38.86] = 1.226 (the
    sample's first customer) and E[X(t)] below (the figures the `lifetimes` package tests
    against). Our fit stands in for its estimates: with the rounded published values E[X(78)]
    is 1.8605, 0.003 off the sheet."""
    fitted = cdnow_fit()
    assert float(expected_purchases(fitted, 39, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=5e-4)
    times = [0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0]
    sheet = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    got = expected_purchases_unconditional(fitted, times)
    assert got.tolist() == pytest.approx(sheet, abs=1e-3)
    # the sample's first customer: purchases 1997-01-01, 01-18, 08-02 in calibration
    first = histories(sample_purchases(), CALIBRATION_END)["c00004"]
    assert first[:3] == (2, pytest.approx(30.43, abs=5e-3), pytest.approx(38.86, abs=5e-3))


# --------------------------------------------------------------------------- the model, brute force


def model_integral(params: BGNBDParams, h: Callable[[float, float], float]) -> float:
    """∫∫ h(λ, p) gamma(λ; r, α) beta(p; a, b) dλ dp by adaptive quadrature (QUADPACK's
    algebraic-weight rule takes the densities' singularities at 0 and 1)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    beta_norm = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
    gamma_norm = math.exp(r * math.log(alpha) - math.lgamma(r))

    def over_p(lam: float) -> float:
        inner, _ = quad(
            lambda p: h(lam, p), 0, 1, weight="alg", wvar=(a - 1, b - 1), epsabs=0, epsrel=1e-12
        )
        return inner * beta_norm * math.exp(-alpha * lam)

    cut = 1 / alpha
    near, _ = quad(over_p, 0, cut, weight="alg", wvar=(r - 1, 0), epsabs=0, epsrel=1e-11)
    far, _ = quad(lambda lam: over_p(lam) * lam ** (r - 1), cut, math.inf, epsrel=1e-11)
    return gamma_norm * (near + far)


def later_purchases(lam: float, p: float, t: float) -> float:
    """E[purchases in the next t | λ, p, alive now] = (1 − e^{−λpt}) / p: purchases happen
    until the first of a Poisson(λp) stream of drop-out purchases (memoryless)."""
    return lam * t if p == 0 else -math.expm1(-lam * p * t) / p


CASES = [  # (x, t_x, T, t)
    (0, 0.0, 38.86, 39.0),
    (2, 30.43, 38.86, 39.0),
    (1, 2.0, 30.0, 10.0),
    (7, 35.0, 36.0, 52.0),
    (15, 10.0, 38.0, 20.0),
    (30, 50.0, 52.0, 100.0),
]
PARAMS = [
    BGNBDParams(**PUBLISHED, log_likelihood=math.nan, n=0),
    BGNBDParams(r=1.7, alpha=3.0, a=2.5, b=4.0, log_likelihood=math.nan, n=0),  # a > 1
]


@pytest.mark.parametrize("params", PARAMS, ids=["published", "a>1"])
@pytest.mark.parametrize("case", CASES, ids=[f"x={c[0]}" for c in CASES])
def test_closed_forms_against_the_definition(
    params: BGNBDParams, case: tuple[int, float, float, float]
) -> None:
    """Given λ and p, the history has density (1−p)^x λ^x e^{−λT} with the buyer alive at T,
    plus (x > 0) p(1−p)^{x−1} λ^x e^{−λ t_x} with the buyer gone at the last purchase."""
    x, t_x, big_t, t = case
    alive = model_integral(params, lambda lam, p: (1 - p) ** x * lam**x * math.exp(-lam * big_t))
    gone = 0.0
    if x:
        gone = model_integral(
            params, lambda lam, p: p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x)
        )
    future = model_integral(
        params,
        lambda lam, p: (1 - p) ** x * lam**x * math.exp(-lam * big_t) * later_purchases(lam, p, t),
    )
    p_alive = float(probability_alive(params, x, t_x, big_t))
    assert p_alive == pytest.approx(alive / (alive + gone), rel=1e-8)
    expected = float(expected_purchases(params, t, x, t_x, big_t))
    assert expected == pytest.approx(future / (alive + gone), rel=1e-8)
    if x == 0:
        assert p_alive == 1.0


@pytest.mark.parametrize("params", PARAMS, ids=["published", "a>1"])
def test_unconditional_expectation_against_the_definition(params: BGNBDParams) -> None:
    for t in (0.5, 39.0, 78.0):
        want = model_integral(params, lambda lam, p, t=t: later_purchases(lam, p, t))
        got = float(expected_purchases_unconditional(params, t))
        assert got == pytest.approx(want, rel=1e-8)
    assert float(expected_purchases_unconditional(params, 0.0)) == 0.0


def test_fitted_log_likelihood_is_the_models() -> None:
    """The reported log-likelihood is Σ ln P(history) by quadrature, at the fitted values."""
    h = histories(sample_purchases(), date(1997, 3, 31))
    x, t_x, big_t = arrays(dict(list(sorted(h.items()))[:60]))
    fitted = fit_bgnbd(x, t_x, big_t)
    total = 0.0
    for xi, ti, big_ti in zip(x.astype(int), t_x, big_t, strict=True):
        density = model_integral(
            fitted,
            lambda lam, p, xi=xi, ti=ti, big_ti=big_ti: (
                (1 - p) ** xi * lam**xi * math.exp(-lam * big_ti)
                + (p * (1 - p) ** (xi - 1) * lam**xi * math.exp(-lam * ti) if xi else 0.0)
            ),
        )
        total += math.log(density)
    assert fitted.log_likelihood == pytest.approx(total, rel=1e-8)
    assert fitted.n == 60


@pytest.mark.parametrize(
    ("x", "t_x", "big_t", "message"),
    [
        ([], [], [], "at least 30 buyers"),
        ([1] * 40, [2.0] * 40, [1.0] * 40, "t_x (the last purchase) must not be after T"),
        ([-1] * 40, [0.0] * 40, [1.0] * 40, "whole numbers ≥ 0"),
        ([1.5] * 40, [1.0] * 40, [2.0] * 40, "whole numbers ≥ 0"),
        ([1] * 40, [-1.0] * 40, [1.0] * 40, "must be ≥ 0"),
        ([0] * 40, [1.0] * 40, [2.0] * 40, "t_x must be 0 where x is 0"),
        ([1] * 40, [1.0] * 39, [2.0] * 40, "same length"),
        ([0] * 40, [0.0] * 40, [2.0] * 40, "no buyer made a repeat purchase"),
        ([1] * 29, [1.0] * 29, [2.0] * 29, "at least 30 buyers to fit; got 29"),
    ],
)
def test_bad_histories_are_refused(
    x: list[float], t_x: list[float], big_t: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_bgnbd(x, t_x, big_t)
    assert MIN_BUYERS == 30


# --------------------------------------------------------------------------- buyer_summary


NAMESPACE = uuid.UUID("0b6a1f0e-3c7d-4e4b-8a6e-b9d1c0a2f005")
TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Ev:
    """One raw event (`ts` a UTC instant); `amount` for orders, as text."""

    event: str
    ts: datetime
    user: str | None = None
    anon: str | None = None
    amount: str = "9.90"

    @property
    def event_id(self) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.event}|{self.ts}|{self.user}|{self.anon}"))

    def raw(self) -> dict[str, Any]:
        e: dict[str, Any] = {
            "event_id": self.event_id,
            "event": self.event,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.user is not None:
            e["user_id"] = self.user
        if self.anon is not None:
            e["anonymous_id"] = self.anon
        if self.event in ("order_paid", "order_refunded"):
            e["amount"] = self.amount
            e["properties"] = {"order_id": f"o-{self.event_id}"}
        return e


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def reference_purchases(events: Sequence[Ev], tz: str) -> dict[str, dict[date, Decimal]]:
    """person → app-local day → amount paid, from the definition: an anonymous id is its
    earliest identify's user; a day is the calendar day in `tz`."""
    links: dict[str, str] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if e.event == "identify" and e.anon is not None and e.user is not None:
            links.setdefault(e.anon, e.user)
    zone = ZoneInfo(tz)
    out: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for e in events:
        if e.event == "order_paid":
            distinct = e.user or e.anon
            assert distinct is not None
            out[links.get(distinct, distinct)][e.ts.astimezone(zone).date()] += Decimal(e.amount)
    return out


HAND_BUILT = [
    # two orders on one local day (09:00 and 20:00 in Shanghai), one a week later, one after
    Ev("order_paid", at("2026-03-01T01:00:00"), user="u1", amount="10.00"),
    Ev("order_paid", at("2026-03-01T12:00:00"), user="u1", amount="5.50"),
    Ev("order_paid", at("2026-03-08T04:00:00"), user="u1", amount="20.25"),
    Ev("order_paid", at("2026-03-25T04:00:00"), user="u1", amount="99.00"),
    # one second before and at local midnight: one UTC day, two Shanghai days
    Ev("order_paid", at("2026-03-01T15:59:59"), user="u2", amount="3.10"),
    Ev("order_paid", at("2026-03-01T16:00:00"), user="u2", amount="4.20"),
    # an anonymous buyer who logs in later: one person, u3
    Ev("order_paid", at("2026-03-02T03:00:00"), anon="a3", amount="7.00"),
    Ev("identify", at("2026-03-05T03:00:00"), user="u3", anon="a3"),
    Ev("order_paid", at("2026-03-10T03:00:00"), user="u3", amount="8.00"),
    # one order; a refund is no purchase
    Ev("order_paid", at("2026-02-10T03:00:00"), user="u4", amount="12.00"),
    Ev("order_refunded", at("2026-02-12T03:00:00"), user="u4", amount="12.00"),
    # visits only: no buyer
    Ev("app_open", at("2026-03-03T03:00:00"), user="u5"),
    # 23:30 on the calibration end (kept) and 00:10 the next local day (not yet)
    Ev("order_paid", at("2026-03-20T15:30:00"), user="u6", amount="1.00"),
    Ev("order_paid", at("2026-03-20T16:10:00"), user="u7", amount="1.00"),
    # an anonymous buyer never identified keeps its own id
    Ev("order_paid", at("2026-03-04T03:00:00"), anon="a8", amount="2.00"),
]
HAND_END = date(2026, 3, 20)


def random_events(seed: int) -> list[Ev]:
    """Orders of 14 persons around local midnight, some first anonymous, over 3 months."""
    rnd = random.Random(seed)
    events: list[Ev] = []
    start = at("2026-01-01T00:00:00")
    for i in range(14):
        user, anon = f"r{i}", f"ra{i}"
        identified = at("2026-02-01T00:00:00") + timedelta(hours=rnd.randrange(24 * 30))
        linked = rnd.random() < 0.5
        if linked:
            events.append(Ev("identify", identified, user=user, anon=anon))
        for _ in range(rnd.randrange(0, 8)):
            # near 16:00 UTC (local midnight) half of the time
            day = start + timedelta(days=rnd.randrange(90))
            minute = rnd.choice([rnd.randrange(24 * 60), 16 * 60 + rnd.randrange(-3, 3)])
            ts = day + timedelta(minutes=minute)
            as_anon = linked and ts < identified and rnd.random() < 0.7
            amount = f"{rnd.randrange(1, 50_000) / 100:.2f}"
            ev = Ev("order_paid", ts, user=None if as_anon else user, anon=anon, amount=amount)
            events.append(ev)
    return events


def summary_rows(store: EventStore, end: date) -> dict[str, tuple[Any, ...]]:
    table = buyer_summary(store, APP, TZ, end)
    assert table.column_names[:5] == ["person", "x", "t_x", "T", "monetary"]
    rows = table.to_pylist()
    assert [r["person"] for r in rows] == sorted(r["person"] for r in rows)
    return {r["person"]: (r["x"], r["t_x"], r["T"], r["monetary"], r["amount"]) for r in rows}


def assert_same(got: dict[str, tuple[Any, ...]], want: dict[str, tuple[Any, ...]]) -> None:
    assert sorted(got) == sorted(want)
    for person, (x, t_x, big_t, monetary, amount) in want.items():
        gx, gt_x, gbig_t, gmonetary, gamount = got[person]
        assert (gx, gt_x, gbig_t, gamount) == (x, t_x, big_t, amount), person
        if monetary is None:
            assert gmonetary is None, person
        else:
            assert gmonetary == pytest.approx(monetary, rel=1e-12), person


@pytest.mark.parametrize("engine", ENGINES)
def test_buyer_summary_hand_built(engine: str) -> None:
    with events_store(engine, [HAND_BUILT], TZ) as store:
        got = summary_rows(store, HAND_END)
        holdout = holdout_purchases(store, APP, TZ, HAND_END, date(2026, 3, 31)).to_pylist()
    want = histories(reference_purchases(HAND_BUILT, TZ), HAND_END)
    assert_same(got, want)
    # worked by hand
    assert got["u1"][:4] == (1, 1.0, 19 / 7, 20.25)
    assert got["u2"][:4] == (1, 1 / 7, 19 / 7, 4.2)
    assert got["u3"][:4] == (1, 8 / 7, 18 / 7, 8.0)
    assert got["u4"][:4] == (0, 0.0, 38 / 7, None)
    assert got["u6"][:3] == (0, 0.0, 0.0)
    assert "u5" not in got and "u7" not in got and "a3" not in got and "a8" in got
    # holdout: u1's order of 03-25 (u7 bought first after the calibration end: not a buyer)
    assert {r["person"]: r["purchases"] for r in holdout} == {p: int(p == "u1") for p in want}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_buyer_summary_random(engine: str, seed: int) -> None:
    events = random_events(seed)
    end, holdout_end = date(2026, 2, 20), date(2026, 3, 15)
    # two batches: links may arrive after the orders they concern
    with events_store(engine, [events[::2], events[1::2]], TZ) as store:
        got = summary_rows(store, end)
        holdout = holdout_purchases(store, APP, TZ, end, holdout_end).to_pylist()
    purchases = reference_purchases(events, TZ)
    assert_same(got, histories(purchases, end))
    assert [r["person"] for r in holdout] == sorted(got)
    assert {r["person"]: r["purchases"] for r in holdout} == holdout_counts(
        purchases, end, holdout_end
    )


# --------------------------------------------------------------------------- CDNOW, a store

CDNOW_APP = "cdnow"
SHIFTED_END = date(2025, 9, 30)  # 1997-09-30, 28 years on (test_cdnow: weekdays and days kept)
SHIFTED_HOLDOUT_END = date(2026, 6, 30)


@pytest.fixture(scope="module", params=ENGINES)
def cdnow_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventStore]:
    """The sample's customers' purchases, imported as `order_paid` events (test_cdnow's
    importer, dates 28 years on, each at 12:00 UTC in a UTC app)."""
    sample = set(sample_purchases())
    events = [e for e in raw_events() if e["user_id"] in sample]
    assert len(events) == len(SAMPLE.read_text().splitlines())
    store = open_store(request.param, tmp_path_factory.mktemp(f"bgnbd-{request.param}"))
    batch = validate_events(events, CDNOW_APP, datetime(2026, 12, 1, tzinfo=UTC))
    assert batch.rejected == []
    store.append(batch.table, {CDNOW_APP: "UTC"})
    yield store
    store.close()


def test_cdnow_store_gives_the_files_summary_and_fit(cdnow_store: EventStore) -> None:
    table = buyer_summary(cdnow_store, CDNOW_APP, "UTC", SHIFTED_END)
    rows = table.to_pylist()
    got = {r["person"]: (r["x"], r["t_x"], r["T"], r["monetary"], r["amount"]) for r in rows}
    assert_same(got, histories(sample_purchases(), CALIBRATION_END))

    x, t_x, big_t = (table.column(c).to_numpy() for c in ("x", "t_x", "T"))
    fitted, from_file = fit_bgnbd(x, t_x, big_t), cdnow_fit()
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(fitted, name) == pytest.approx(getattr(from_file, name), rel=1e-9)

    holdout = holdout_purchases(cdnow_store, CDNOW_APP, "UTC", SHIFTED_END, SHIFTED_HOLDOUT_END)
    want = holdout_counts(sample_purchases(), CALIBRATION_END, HOLDOUT_END)
    assert dict(zip(*holdout.to_pydict().values(), strict=True)) == want


# --------------------------------------------------------------------------- the CLI


def simulated_buyers(n: int, seed: int) -> list[tuple[str, date, str]]:
    """(user, local day, amount) of n buyers who follow BG/NBD (weeks; r = 0.8, α = 2, a = 0.8,
    b = 2.5), first buying in January 2026, observed to 2026-05-31."""
    rng = np.random.default_rng(seed)
    start, end = date(2026, 1, 1), date(2026, 5, 31)
    out = []
    for i in range(n):
        rate, drop = rng.gamma(0.8, 1 / 2.0), rng.beta(0.8, 2.5)
        day = start + timedelta(days=int(rng.integers(0, 31)))
        weeks = (day - start).days / 7
        while day <= end:
            out.append((f"buyer{i:02d}", day, f"{rng.integers(500, 30_000) / 100:.2f}"))
            if rng.random() < drop:
                break
            weeks += rng.exponential(1 / rate)
            day = start + timedelta(days=int(weeks * 7))
    return out


@pytest.fixture
def cli_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[Ev]]:
    """An app "shop" (Asia/Shanghai) in a private data dir, with 60 simulated buyers' orders
    at 10:00 local time and a visit on 2026-06-01."""
    from liucun.config import load_settings
    from liucun.local import open_events
    from liucun.state.apps import create_app
    from liucun.state.db import open_state

    monkeypatch.chdir(tmp_path)
    for name in ("LIUCUN_EVENT_STORE", "LIUCUN_STATE_STORE", "LIUCUN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIUCUN_DATA_DIR", str(tmp_path / "data"))
    s = load_settings()
    s.data_dir.mkdir(parents=True)
    state = open_state(s.state_store_url)
    app = create_app(state, "shop", TZ)
    state.dispose()
    events = [
        Ev("order_paid", datetime(d.year, d.month, d.day, 2, tzinfo=UTC), user=u, amount=a)
        for u, d, a in simulated_buyers(60, seed=2)
    ]
    events.append(Ev("app_open", at("2026-06-01T02:00:00"), user="visitor"))
    store = open_events(s)
    batch = validate_events([e.raw() for e in events], app.app_id, at("2026-07-01T00:00:00"))
    assert batch.rejected == []
    store.append(batch.table, {app.app_id: TZ})
    store.close()
    return app.app_id, events


def run_cli(*args: str) -> Any:
    from liucun.cli import app

    return CliRunner().invoke(app, ["churn", "bgnbd", "--app", "shop", *args])


def test_cli_json(cli_app: tuple[str, list[Ev]]) -> None:
    app_id, events = cli_app
    end, holdout_end = date(2026, 3, 31), date(2026, 5, 31)
    done = run_cli("--calibration-end", str(end), "--holdout-end", str(holdout_end), "--top", "5")
    assert done.exit_code == 0, done.stderr
    out = orjson.loads(
        run_cli(
            "--calibration-end", str(end), "--holdout-end", str(holdout_end), "--top", "5", "--json"
        ).stdout
    )
    assert "P(alive)" in done.stdout and "BG/NBD" in done.stderr

    purchases = reference_purchases(events, TZ)
    h = histories(purchases, end)
    x, t_x, big_t = arrays(h)
    params = fit_bgnbd(x, t_x, big_t)
    assert out["app_id"] == app_id
    assert (out["calibration_end"], out["holdout_end"]) == (str(end), str(holdout_end))
    assert out["buyers"] == len(h) and out["repeat_buyers"] == int((x > 0).sum())
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert out["params"][name] == pytest.approx(getattr(params, name), rel=1e-9)

    weeks = (holdout_end - end).days / 7
    forecast = expected_purchases(params, weeks, x, t_x, big_t)
    assert out["holdout"]["weeks"] == weeks
    assert out["holdout"]["forecast"] == pytest.approx(float(forecast.sum()), rel=1e-9)
    assert out["holdout"]["actual"] == sum(holdout_counts(purchases, end, holdout_end).values())

    # the 5 with the lowest P(alive) among the top fifth (at least 5) by amount paid
    persons = sorted(h)
    alive = dict(zip(persons, probability_alive(params, x, t_x, big_t), strict=True))
    by_value = sorted(persons, key=lambda p: (-h[p][4], p))
    valuable = by_value[: max(5, math.ceil(VALUABLE_SHARE * len(persons)))]
    listed = sorted(valuable, key=lambda p: (alive[p], -h[p][4], p))[:5]
    assert [b["person"] for b in out["at_risk"]] == listed
    first = out["at_risk"][0]
    assert first["p_alive"] == pytest.approx(alive[listed[0]], rel=1e-9)
    assert Decimal(first["amount"]) == h[listed[0]][4]
    assert first["x"] == h[listed[0]][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calibration-end", "2026-06-02"], "latest day is 2026-06-01"),
        (["--calibration-end", "2026-03-31", "--holdout-end", "2026-07-01"], "holdout end"),
        (["--calibration-end", "2026-03-31", "--holdout-end", "2026-03-01"], "must be after"),
        (["--calibration-end", "2026-01-04"], "at least 30 buyers"),
        (["--calibration-end", "31/03/2026"], "YYYY-MM-DD"),
    ],
)
def test_cli_refuses_bad_arguments(
    cli_app: tuple[str, list[Ev]], args: list[str], message: str
) -> None:
    done = run_cli(*args, "--json")
    assert done.exit_code == 2, done.stdout
    assert message in " ".join(done.stderr.split())
    assert done.stdout == ""
