"""The playbook's `engage` section: named segments, subscribe-message rules (caps, quiet
hours, templates per scenario) and campaigns (holdouts, win-back flows)."""

from __future__ import annotations

from pydantic import Field

from liucun.playbook.campaigns import CampaignRules
from liucun.playbook.churn import Strict
from liucun.playbook.messages import MessageRules
from liucun.playbook.segments import SegmentRules


class EngageRules(Strict):
    segments: SegmentRules = Field(default_factory=SegmentRules)
    messages: MessageRules = Field(default_factory=MessageRules)
    campaigns: CampaignRules = Field(default_factory=CampaignRules)
