"""The playbook's `risk` section: the churn-risk model's horizon and thresholds."""

from __future__ import annotations

from pydantic import Field

from liucun.playbook.churn import Strict


class RiskSettings(Strict):
    """How the churn-risk model (lifecycle/risk) is trained and read.

    risk: the calibrated probability that a person has no activity on any of the
    `horizon_days` days after the day scored.
    """

    # seeds (002): an established e-commerce user 30 days away is churned (the `churn` preset);
    # the model predicts that outcome a horizon ahead
    horizon_days: int = Field(30, ge=7, le=180)
    # a risk at or above this is "high risk" (alerts and win-back read it); not in the seeds
    high_risk: float = Field(0.7, gt=0.0, lt=1.0)
    # reasons (features that push the risk up) kept per person; win-back acts on the first
    reasons: int = Field(3, ge=1, le=10)
    # persons with features and an observed label needed to train; fewer give a model whose
    # held-out figures are noise (not in the seeds)
    min_training_persons: int = Field(200, ge=50)
    # and of each label (churned, stayed), so that calibration sees both outcomes
    min_each_label: int = Field(20, ge=5)
    # the daily run retrains once the model's labels are this many days old (not in the
    # seeds: a week keeps up with a changing product without retraining every day)
    retrain_days: int = Field(7, ge=1, le=365)
