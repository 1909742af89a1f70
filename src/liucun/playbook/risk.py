"""The playbook's `risk` section: the churn-risk model's horizon and thresholds."""

from __future__ import annotations

from liucun.playbook.churn import Strict


class RiskSettings(Strict):
    """Filled by the churn-risk work (issue 6 part 3)."""
