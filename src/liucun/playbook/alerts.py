"""The playbook's `alerts` section: early-warning thresholds and their delivery."""

from __future__ import annotations

from liucun.playbook.churn import Strict


class AlertRules(Strict):
    """Filled by the alerts work (issue 6 part 4)."""
