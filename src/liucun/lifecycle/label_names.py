"""The lifecycle labels in their order, with the names people read (no heavy imports, so the
CLI starts fast)."""

from __future__ import annotations

LABEL_NAMES = {
    "new": "新用户 new",
    "active": "活跃 active",
    "resurrected": "回流 resurrected",
    "silent": "沉默 silent",
    "churned": "流失 churned",
}
LABELS = tuple(LABEL_NAMES)
