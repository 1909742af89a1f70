"""The playbook's `winback` section: who is on the win-back list, how value is scored, and
which offer each user gets.

The seeds (shared/seeds/002) win users back "by their value and the reason they left, not one
offer for all": silent users "15 days inactive with a purchase history" get a 20-yuan
no-threshold coupon ("您有一张 20 元无门槛券即将过期,点击使用"), silent users without one a
comeback pack (回归礼包, seeds/001), churned users an offer by their value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from liucun.playbook.churn import Slug, Strict

WinbackLabel = Literal["silent", "churned"]


def _both_labels() -> list[WinbackLabel]:
    return ["silent", "churned"]


class Coupon(Strict):
    """A coupon of one of the seeds' three kinds: no threshold, spend X save Y, a discount."""

    kind: Literal["no_threshold", "spend_save", "discount"]
    yuan: float | None = Field(None, gt=0, le=100_000)
    min_spend_yuan: float | None = Field(None, gt=0, le=1_000_000)
    percent_off: float | None = Field(None, gt=0, lt=100)

    @model_validator(mode="after")
    def _complete(self) -> Coupon:
        need = {
            "no_threshold": ("yuan",),
            "spend_save": ("yuan", "min_spend_yuan"),
            "discount": ("percent_off",),
        }[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} coupon needs {', '.join(missing)}")
        if self.kind == "spend_save" and (self.yuan or 0) >= (self.min_spend_yuan or 0):
            raise ValueError("spend_save: yuan off must be below min_spend_yuan")
        return self


class Offer(Strict):
    """The offer for users on the list who match every condition; the first match wins."""

    name: Slug
    zh: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)
    labels: list[WinbackLabel] = Field(default_factory=_both_labels, min_length=1)
    min_orders: int = Field(0, ge=0, description="Paid orders in the RFM window, at least.")
    max_orders: int | None = Field(None, ge=0)
    min_inactive_days: int = Field(0, ge=0)
    min_value: int = Field(3, ge=3, le=15, description="RFM value (R + F + M), at least.")
    coupon: Coupon | None = None


def _default_offers() -> list[Offer]:
    offers: list[dict[str, Any]] = [
        {
            "name": "vip_comeback",
            "zh": "高价值用户专属回归礼:30 元无门槛券 + 专属客服回访",
            "en": "VIP comeback: a 30-yuan no-threshold coupon and a personal call from support",
            "labels": ["churned"],
            "min_orders": 1,
            "min_value": 11,
            "coupon": {"kind": "no_threshold", "yuan": 30},
        },
        {
            # seeds (002): "近 15 天未活跃但历史有消费" → a 20-yuan no-threshold coupon
            "name": "buyer_coupon",
            "zh": "20 元无门槛券(“您有一张 20 元无门槛券即将过期,点击使用”)",
            "en": "A 20-yuan no-threshold coupon ('your 20-yuan coupon expires soon, tap to use')",
            "min_orders": 1,
            "min_inactive_days": 15,
            "coupon": {"kind": "no_threshold", "yuan": 20},
        },
        {
            # seeds (001): "对沉默用户发送“回归礼包”"
            "name": "comeback_pack",
            "zh": "回归礼包:满 50 减 10 元券",
            "en": "Comeback pack: 10 yuan off orders of 50",
            "max_orders": 0,
            "coupon": {"kind": "spend_save", "yuan": 10, "min_spend_yuan": 50},
        },
        {
            # a buyer who still comes but stopped buying (seeds 002: "30 天未购买但有浏览")
            "name": "repurchase_coupon",
            "zh": "回购券:满 100 减 15 元",
            "en": "A repurchase coupon: 15 yuan off orders of 100",
            "min_orders": 1,
            "coupon": {"kind": "spend_save", "yuan": 15, "min_spend_yuan": 100},
        },
    ]
    return [Offer.model_validate(o) for o in offers]


class WinbackRules(Strict):
    labels: list[WinbackLabel] = Field(default_factory=_both_labels, min_length=1)
    # RFM over the last year: R, F and M each scored 1–5 by quintile among the persons
    # active in the window (docs/lifecycle.md#win-back)
    rfm_days: int = Field(365, ge=7, le=3660)
    offers: list[Offer] = Field(default_factory=_default_offers, max_length=50)

    @model_validator(mode="after")
    def _unique(self) -> WinbackRules:
        names = [o.name for o in self.offers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"offer names must be unique; repeated: {', '.join(twice)}")
        return self
