"""The playbook's `winback` section: who is on the win-back list and what offer each gets."""

from __future__ import annotations

from liucun.playbook.churn import Strict


class WinbackRules(Strict):
    """Filled by the win-back work (issue 6 part 5)."""
