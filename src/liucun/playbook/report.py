"""The playbook's `report` section: how the monthly evaluation turns the seeds' rules into
concrete adjustments.

The targets themselves (weekly revisits ≥ 2, churn ≤ 50%, MAU 15–20× mean daily UV, the
first screen within 2 s, the promotion cliff) are the `alerts` section's, so the report and
the alerts never disagree; this section holds only what the report adds.
"""

from __future__ import annotations

from pydantic import Field

from liucun.playbook.churn import Strict


class ReportRules(Strict):
    # seeds (000): "周均复访次数低于 2 次需升级福利力度" gives no step; ours: raise the ladder's
    # coupon by 2 yuan a month until revisits recover, small enough to watch its cost
    ladder_step_yuan: float = Field(default=2.0, gt=0, le=1_000)
    # seeds (000): "用户流失率超 50% 则需排查功能或体验问题 … 监测退出节点": the pages to look
    # at first, worst exit rate first, among pages seen in at least `min_page_sessions`
    worst_pages: int = Field(default=5, ge=1, le=50)
    min_page_sessions: int = Field(default=30, ge=1)
    # "what changed and where": a platform or scene whose actives moved by at least this
    # share against the previous month is called out (ours)
    notable_change: float = Field(default=0.1, gt=0, le=10)
