"""The BG/NBD model of buyers who leave silently (Fader, Hardie & Lee, Marketing Science 2005).

Each buyer, while alive, buys at the times of a Poisson process of rate λ; after each purchase
they drop out for good with probability p. Across buyers λ is gamma(r, α) (shape r, rate α) and
p is beta(a, b). A buyer's history is summarised by x (repeat purchases: purchases after the
first one), t_x (time of the last purchase, from the first one; 0 when x = 0) and T (time from
the first purchase to the end of observation), all in one time unit (liucun uses weeks).

The four parameters are fitted by maximum likelihood; then, per buyer, P(alive) and the
expected number of purchases in the next t time units follow in closed form. The formulas are
written from the paper (its equations 6, 9 and 10, and eq. 7 for E[X(t)]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

# Fewer buyers than this make four parameters noise, not a description of the app's buyers.
MIN_BUYERS = 30

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BGNBDParams:
    """A fitted BG/NBD model: purchase rates λ ~ gamma(r, α), drop-out probabilities
    p ~ beta(a, b); `log_likelihood` of the `n` buyers it was fitted on."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: int


def _histories(
    x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """x, t_x, T as float arrays of one shape, or a ValueError saying what is wrong."""
    xs, txs, ts = (np.asarray(v, dtype=np.float64) for v in (x, t_x, big_t))
    try:
        xs, txs, ts = np.broadcast_arrays(xs, txs, ts)
    except ValueError:
        raise ValueError(
            f"x, t_x and T must have the same length (got {xs.shape}, {txs.shape}, {ts.shape})"
        ) from None
    if not (np.isfinite(xs).all() and np.isfinite(txs).all() and np.isfinite(ts).all()):
        raise ValueError("x, t_x and T must be finite numbers")
    if (xs < 0).any() or (xs != np.floor(xs)).any():
        raise ValueError("x (repeat purchases) must be whole numbers ≥ 0")
    if (txs < 0).any() or (ts < 0).any():
        raise ValueError("t_x and T must be ≥ 0 (times since the first purchase)")
    if (txs > ts).any():
        raise ValueError("t_x (the last purchase) must not be after T (the end of observation)")
    if ((xs == 0) & (txs != 0)).any():
        raise ValueError("t_x must be 0 where x is 0 (no repeat purchase)")
    return xs, txs, ts


def _log_likelihood(
    params: FloatArray, x: FloatArray, t_x: FloatArray, big_t: FloatArray, weight: FloatArray
) -> float:
    """Σ weight · ln L(r, α, a, b | x, t_x, T) (FHL 2005 eq. 6), the parameters as logs.

    L = Γ(r+x) α^r / Γ(r) · B(a, b+x) / B(a, b)
        · [ (α+T)^-(r+x) + δ(x>0) · a/(b+x−1) · (α+t_x)^-(r+x) ]
    """
    r, alpha, a, b = np.exp(params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    still_alive = -(r + x) * np.log(alpha + big_t)
    # b + x − 1 is only read where x > 0; the placeholder keeps log() quiet elsewhere
    safe = np.where(x > 0, b + x - 1, 1.0)
    dropped = np.where(x > 0, np.log(a) - np.log(safe) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(weight * (common + np.logaddexp(still_alive, dropped))))


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike) -> BGNBDParams:
    """The maximum-likelihood BG/NBD parameters of buyers with histories (x, t_x, T).

    x: repeat purchases; t_x: time of the last purchase since the first (0 when x = 0); T: time
    from the first purchase to the end of observation. Needs `MIN_BUYERS` buyers, some with a
    repeat purchase. Fitted on log-parameters (so all four stay positive) by BFGS from
    r = α = a = b = 1, then polished by Nelder–Mead.
    """
    xs, txs, ts = _histories(x, t_x, big_t)
    n = xs.size
    if n < MIN_BUYERS:
        raise ValueError(f"BG/NBD needs at least {MIN_BUYERS} buyers to fit; got {n}")
    if not (xs > 0).any():
        raise ValueError("no buyer made a repeat purchase: BG/NBD cannot be fitted")
    # buyers with one history share a likelihood term: fit on the distinct histories, weighted
    histories, weight = np.unique(np.stack([xs, txs, ts], axis=1), axis=0, return_counts=True)
    args = (*histories.T, weight.astype(np.float64))

    def loss(p: FloatArray) -> float:
        if (np.abs(p) > 30).any():  # e^30: out of any meaningful range, and exp would overflow
            return np.inf
        value = -_log_likelihood(p, *args)
        return value if np.isfinite(value) else np.inf

    # BFGS from r = α = a = b = 1 converges in ~100 evaluations on CDNOW; Nelder–Mead then
    # polishes, and is capped: when the data cannot tell drop-out probabilities apart, a and b
    # run off together towards infinity (p ≈ a/(a+b) for all) and no finite optimum exists
    # (an infinite loss at the edge makes inf − inf in the finite differences: not an error)
    with np.errstate(all="ignore"):
        quick = minimize(loss, np.zeros(4), method="BFGS", options={"gtol": 1e-6})
        polished = minimize(
            loss,
            quick.x,
            method="Nelder-Mead",
            options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 2000},
        )
    best = polished if polished.fun <= quick.fun else quick
    if not np.isfinite(best.fun):
        raise ValueError("the BG/NBD likelihood could not be maximised on these buyers")
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return BGNBDParams(r, alpha, a, b, -float(best.fun), int(n))


def _log_odds_dropped(
    params: BGNBDParams, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """ln of a/(b+x−1) · ((α+T)/(α+t_x))^(r+x): the odds that a buyer with x > 0 dropped out
    at the last purchase rather than being still alive at T (−∞ where x = 0)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    safe = np.where(x > 0, b + x - 1, 1.0)
    odds = np.log(a) - np.log(safe) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))
    return np.where(x > 0, odds, -np.inf)


def probability_alive(
    params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike
) -> FloatArray:
    """P(alive at T | x, t_x, T) = 1 / (1 + δ(x>0) · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))
    (FHL 2005 eq. 9; 1 for a buyer without a repeat purchase, who by the model cannot have
    dropped out yet)."""
    xs, txs, ts = _histories(x, t_x, big_t)
    return np.asarray(expit(-_log_odds_dropped(params, xs, txs, ts)), dtype=np.float64)


def expected_purchases(
    params: BGNBDParams, t: float, x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: a buyer's expected purchases in (T, T + t] (FHL 2005 eq. 10).

    = P(alive) · (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x)
                                        · ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
    """
    xs, txs, ts = _histories(x, t_x, big_t)
    if t < 0:
        raise ValueError(f"the forecast length t must be ≥ 0; got {t}")
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    shrink = np.exp((r + xs) * (np.log(alpha + ts) - np.log(alpha + ts + t)))
    hyp = hyp2f1(r + xs, b + xs, a + b + xs - 1, t / (alpha + ts + t))
    alive = expit(-_log_odds_dropped(params, xs, txs, ts))
    return np.asarray(alive * (a + b + xs - 1) / (a - 1) * (1 - shrink * hyp), dtype=np.float64)


def expected_purchases_unconditional(params: BGNBDParams, t: ArrayLike) -> FloatArray:
    """E[X(t)]: the expected repeat purchases in the first t time units of a new buyer
    (FHL 2005 eq. 7) = (a+b−1)/(a−1) · [1 − (α/(α+t))^r · ₂F₁(r, b; a+b−1; t/(α+t))]."""
    ts = np.asarray(t, dtype=np.float64)
    if (ts < 0).any() or not np.isfinite(ts).all():
        raise ValueError("t must be finite and ≥ 0")
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    shrink = (alpha / (alpha + ts)) ** r
    hyp = hyp2f1(r, b, a + b - 1, ts / (alpha + ts))
    return np.asarray((a + b - 1) / (a - 1) * (1 - shrink * hyp), dtype=np.float64)
