"""The statistics of campaign results, as GrowthBook's engine (`gbstats`) defines them.

- Each arm's metric is summarised by sufficient statistics: n, the sum and the sum of squares
  of the per-user values (`Sample`); mean = sum / n, variance = the sample variance (n − 1).
- Absolute lift (treatment − holdout) with Welch's t-test: standard error
  sqrt(v_t / n_t + v_h / n_h), Welch–Satterthwaite degrees of freedom
  (v_t/n_t + v_h/n_h)² / ((v_t/n_t)²/(n_t − 1) + (v_h/n_h)²/(n_h − 1)),
  CI = diff ± t_{1−α/2, dof} · se, two-sided p from the t distribution.
- Relative lift (m_t − m_h) / m_h with its variance by the delta method (gbstats
  `frequentist_variance`, `variance_of_ratios` with no covariance between independent arms):
  v_t / (m_h² n_t) + v_h m_t² / (m_h⁴ n_h); the CI is the same t quantile times its root.
- SRM: Pearson's chi-square of the observed arm sizes against the expected shares, df = arms
  − 1 (gbstats `check_srm`); a mismatch is flagged when p < 0.001 (the playbook's
  `srm_p_value`).

Error conditions (an arm with fewer than 2 users, no variance, a zero holdout mean for a
relative lift) are returned as a named `note` with no interval, never raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import chi2, t


@dataclass(frozen=True)
class Sample:
    """Sufficient statistics of one arm's per-user values; samples add up."""

    n: int
    total: float
    total_sq: float

    @classmethod
    def of(cls, values: list[float]) -> Sample:
        return cls(len(values), float(sum(values)), float(sum(v * v for v in values)))

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (denominator n − 1); 0 below 2 values."""
        if self.n < 2:
            return 0.0
        # sum of squares about the mean, never below 0 from rounding
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)


@dataclass(frozen=True)
class Lift:
    treatment_mean: float
    holdout_mean: float
    absolute: float
    absolute_ci: tuple[float, float] | None
    relative: float | None
    relative_ci: tuple[float, float] | None
    p_value: float | None
    dof: float | None
    note: str | None  # why an interval is missing

    def as_json(self) -> dict[str, Any]:
        return {
            "treatment_mean": self.treatment_mean,
            "holdout_mean": self.holdout_mean,
            "absolute": self.absolute,
            "absolute_ci": list(self.absolute_ci) if self.absolute_ci else None,
            "relative": self.relative,
            "relative_ci": list(self.relative_ci) if self.relative_ci else None,
            "p_value": self.p_value,
            "dof": self.dof,
            "note": self.note,
        }


def welch_dof(treatment: Sample, holdout: Sample) -> float:
    a = treatment.variance / treatment.n
    b = holdout.variance / holdout.n
    return (a + b) ** 2 / (a * a / (treatment.n - 1) + b * b / (holdout.n - 1))


def relative_variance(treatment: Sample, holdout: Sample) -> float:
    """The delta-method variance of (m_t − m_h) / m_h (module docstring)."""
    m_t, m_h = treatment.mean, holdout.mean
    return treatment.variance / (m_h**2 * treatment.n) + holdout.variance * m_t**2 / (
        m_h**4 * holdout.n
    )


def lift(treatment: Sample, holdout: Sample, confidence: float = 0.95) -> Lift:
    """Treatment against holdout: absolute and relative lift with two-sided intervals."""
    diff = treatment.mean - holdout.mean
    relative = diff / holdout.mean if holdout.mean else None

    def empty(note: str) -> Lift:
        return Lift(treatment.mean, holdout.mean, diff, None, relative, None, None, None, note)

    if treatment.n < 2 or holdout.n < 2:
        return empty("too_few_users")
    se2 = treatment.variance / treatment.n + holdout.variance / holdout.n
    if se2 <= 0:
        return empty("no_variance")
    dof = welch_dof(treatment, holdout)
    quantile = float(t.ppf(1 - (1 - confidence) / 2, dof))
    width = quantile * math.sqrt(se2)
    p_value = float(2 * t.sf(abs(diff) / math.sqrt(se2), dof))
    relative_ci = None
    note = None
    if relative is None:
        note = "zero_holdout_mean"
    else:
        rel_width = quantile * math.sqrt(relative_variance(treatment, holdout))
        relative_ci = (relative - rel_width, relative + rel_width)
    return Lift(
        treatment.mean,
        holdout.mean,
        diff,
        (diff - width, diff + width),
        relative,
        relative_ci,
        p_value,
        dof,
        note,
    )


@dataclass(frozen=True)
class Srm:
    observed: dict[str, int]
    expected_shares: dict[str, float]
    chi_square: float
    p_value: float
    mismatch: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "observed": self.observed,
            "expected_shares": self.expected_shares,
            "chi_square": self.chi_square,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
        }


def srm_check(observed: dict[str, int], shares: dict[str, float], threshold: float = 0.001) -> Srm:
    """Pearson's chi-square of the arm sizes against the expected shares (module docstring);
    arms with a zero share are left out, no users at all is p = 1."""
    arms = [a for a in observed if shares.get(a, 0) > 0]
    total = sum(observed[a] for a in arms)
    weight = sum(shares[a] for a in arms)
    if total == 0 or len(arms) < 2:
        return Srm(observed, shares, 0.0, 1.0, False)
    statistic = 0.0
    for arm in arms:
        expected = shares[arm] / weight * total
        statistic += (observed[arm] - expected) ** 2 / expected
    p_value = float(chi2.sf(statistic, len(arms) - 1))
    return Srm(observed, shares, statistic, p_value, p_value < threshold)
