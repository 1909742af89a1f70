"""Deterministic hash assignment to the global control group and to campaign arms.

A user's position is `u = int(sha256(key)[:8 bytes]) / 2**64`, uniform in [0, 1):

- global control: key `"liucun:global-control:{app_id}:{user_id}"`; the user is in the global
  control group when `u < global_control_share`. Salted by app only, so the same users are in
  it for every campaign of the app (that is what makes it a control for *all* campaigns).
- campaign arm: key `"liucun:holdout:{campaign_id}:{user_id}"`; `holdout` when
  `u < holdout_share`, else `treatment`. Salted by campaign, so each campaign draws a fresh
  holdout, independent of the global control draw and of other campaigns' holdouts (different
  keys give independent sha256 outputs), and a user is not held out of every campaign.

No state is needed to decide: re-running gives the same answer on every machine. The state
store still records each campaign+user assignment (arm, at) for results.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Arm = Literal["treatment", "holdout"]
_SCALE = float(1 << 64)


def unit_hash(key: str) -> float:
    """The first 64 bits of sha256(key), as a number uniform in [0, 1)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def _check_share(share: float) -> None:
    if not 0 <= share < 0.5:
        raise ValueError(f"share must be in [0, 0.5), got {share}")


def global_control_position(app_id: str, user_id: str) -> float:
    return unit_hash(f"liucun:global-control:{app_id}:{user_id}")


def in_global_control(app_id: str, user_id: str, share: float) -> bool:
    """Whether the user is in the app's global control group (touched by no campaign)."""
    _check_share(share)
    return global_control_position(app_id, user_id) < share


def arm_of(campaign_id: str, user_id: str, holdout_share: float) -> Arm:
    """The user's arm in a campaign: `holdout` (no action ever) or `treatment`."""
    _check_share(holdout_share)
    position = unit_hash(f"liucun:holdout:{campaign_id}:{user_id}")
    return "holdout" if position < holdout_share else "treatment"
