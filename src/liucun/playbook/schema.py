"""The whole playbook: one validated document, one section per capability.

A section an operator leaves out of their file takes the shipped default (`default.yaml`), so
a file written before a section existed stays valid.
"""

from __future__ import annotations

from typing import Literal

from liucun.playbook.alerts import AlertRules
from liucun.playbook.churn import ChurnRules, Strict
from liucun.playbook.engage import EngageRules
from liucun.playbook.loyalty import LoyaltyRules
from liucun.playbook.report import ReportRules
from liucun.playbook.risk import RiskSettings
from liucun.playbook.winback import WinbackRules

# the playbook format this code reads; a file names the one it was written for
PLAYBOOK_VERSION = 1


class Playbook(Strict):
    version: Literal[1]
    churn: ChurnRules
    risk: RiskSettings
    alerts: AlertRules
    winback: WinbackRules
    loyalty: LoyaltyRules
    engage: EngageRules
    report: ReportRules
