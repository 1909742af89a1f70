"""Fixed tables of the simulated world: industries' page paths and orders, scenes, screens, hours.

An industry's *path* is the key path of a session, always five pages ending in payment:
a session starts on `pages[0]` and moves on to the next page with probability
`continue_probs[k]`, or exits. A session that reaches the last page pays with probability
`pay_success`; its order amount is drawn in fen (1 yuan = 100 fen) from a price list when the
industry has one, else from a lognormal around `amount_median_yuan`.
"""

from __future__ import annotations

from dataclasses import dataclass

PATH_LENGTH = 5


@dataclass(frozen=True)
class Industry:
    name: str
    pages: tuple[str, str, str, str, str]
    continue_probs: tuple[float, float, float, float]
    pay_success: float
    amount_median_yuan: float
    amount_sigma: float
    # fixed price points (yuan) and their weights; empty means lognormal amounts
    prices_yuan: tuple[float, ...] = ()
    price_weights: tuple[float, ...] = ()
    # multiplies every user type's visit rate (bill payers come monthly, diners daily)
    visit_multiplier: float = 1.0
    weekend_factor: float = 1.0
    # the subscribe-message template offered in this industry
    template_id: str = "tpl_generic"


INDUSTRIES: dict[str, Industry] = {
    i.name: i
    for i in (
        Industry(
            "ecommerce",
            (
                "pages/index/index",
                "pages/category/category",
                "pages/goods/detail",
                "pages/cart/cart",
                "pages/order/pay",
            ),
            (0.60, 0.50, 0.30, 0.45),
            pay_success=0.85,
            amount_median_yuan=89.0,
            amount_sigma=0.7,
            weekend_factor=1.2,
            template_id="tpl_order_shipped",
        ),
        Industry(
            "education",
            (
                "pages/index/index",
                "pages/course/list",
                "pages/course/detail",
                "pages/course/trial",
                "pages/order/pay",
            ),
            (0.55, 0.45, 0.25, 0.20),
            pay_success=0.8,
            amount_median_yuan=299.0,
            amount_sigma=0.6,
            visit_multiplier=0.8,
            weekend_factor=0.85,
            template_id="tpl_class_reminder",
        ),
        Industry(
            "tools",
            (
                "pages/index/index",
                "pages/tool/editor",
                "pages/tool/result",
                "pages/vip/plans",
                "pages/vip/pay",
            ),
            (0.80, 0.70, 0.08, 0.30),
            pay_success=0.9,
            amount_median_yuan=18.0,
            amount_sigma=0.0,
            prices_yuan=(6.0, 18.0, 30.0, 68.0, 198.0),
            price_weights=(0.30, 0.35, 0.20, 0.10, 0.05),
            visit_multiplier=0.9,
            weekend_factor=0.8,
            template_id="tpl_task_done",
        ),
        Industry(
            "billpay",
            (
                "pages/index/index",
                "pages/bill/category",
                "pages/bill/account",
                "pages/bill/confirm",
                "pages/bill/pay",
            ),
            (0.70, 0.75, 0.70, 0.80),
            pay_success=0.95,
            amount_median_yuan=120.0,
            amount_sigma=0.6,
            visit_multiplier=0.3,
            weekend_factor=0.9,
            template_id="tpl_bill_due",
        ),
        Industry(
            "finance",
            (
                "pages/index/index",
                "pages/fund/list",
                "pages/fund/detail",
                "pages/fund/confirm",
                "pages/fund/pay",
            ),
            (0.50, 0.40, 0.12, 0.50),
            pay_success=0.9,
            amount_median_yuan=2000.0,
            amount_sigma=1.0,
            visit_multiplier=0.8,
            weekend_factor=0.6,
            template_id="tpl_asset_update",
        ),
        Industry(
            "food",
            (
                "pages/index/index",
                "pages/menu/menu",
                "pages/menu/dish",
                "pages/cart/cart",
                "pages/order/pay",
            ),
            (0.80, 0.60, 0.55, 0.65),
            pay_success=0.92,
            amount_median_yuan=32.0,
            amount_sigma=0.45,
            weekend_factor=1.25,
            template_id="tpl_order_ready",
        ),
    )
}

# Dwell time per path step (median ms, the lognormal's sigma is shared) and mean taps per step.
DWELL_MEDIAN_MS: tuple[float, ...] = (6_000.0, 12_000.0, 20_000.0, 9_000.0, 15_000.0)
DWELL_SIGMA = 0.8
DWELL_MAX_MS = 300_000
TAPS_MEAN: tuple[float, ...] = (1.5, 3.0, 2.5, 2.0, 1.5)
TAPS_MAX = 15

# WeChat scene codes (string) and their shares: 1089 recent list, 1001 discover pull-down,
# 1104 "my mini-programs", 1007/1008 share card in a chat/group, 1011 QR code, 1047 mini-program
# code, 1035 official-account menu, 1037 from another mini-program, 1014 subscribe message.
SCENES: tuple[str, ...] = (
    "1089", "1001", "1104", "1007", "1008", "1011", "1047", "1035", "1037", "1014",
)  # fmt: skip
SCENE_WEIGHTS: tuple[float, ...] = (0.30, 0.22, 0.10, 0.08, 0.06, 0.05, 0.05, 0.05, 0.04, 0.05)
# fake visitors arrive through cheap, scriptable entries
BOT_SCENE_WEIGHTS: tuple[float, ...] = (0.0, 0.7, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0)

# the platform each user runs on (indices into events.standard.PLATFORMS order)
PLATFORM_WEIGHTS: tuple[float, ...] = (0.86, 0.06, 0.04, 0.01, 0.015, 0.015)

# common phone screens in CSS pixels (width, height) and their shares
SCREENS: tuple[tuple[int, int], ...] = (
    (375, 667),
    (375, 812),
    (390, 844),
    (393, 852),
    (414, 896),
    (360, 780),
    (412, 915),
    (428, 926),
)
SCREEN_WEIGHTS: tuple[float, ...] = (0.12, 0.18, 0.20, 0.12, 0.12, 0.10, 0.10, 0.06)

# Relative session starts per app-local hour 0..23: lunch and evening peaks on weekdays, a later
# and flatter day at weekends; bots run at night when nobody watches.
WEEKDAY_HOURS: tuple[float, ...] = (
    0.6, 0.3, 0.2, 0.15, 0.15, 0.3, 0.8, 1.8, 2.6, 2.6, 2.8, 3.6,
    5.0, 4.2, 2.8, 2.6, 2.7, 3.0, 3.6, 4.6, 5.4, 5.6, 4.2, 2.0,
)  # fmt: skip
WEEKEND_HOURS: tuple[float, ...] = (
    1.0, 0.6, 0.35, 0.2, 0.15, 0.2, 0.4, 0.9, 1.6, 2.5, 3.2, 4.0,
    4.8, 4.4, 3.6, 3.4, 3.4, 3.6, 4.0, 4.8, 5.4, 5.4, 4.4, 2.6,
)  # fmt: skip
BOT_HOURS: tuple[float, ...] = (
    3.0, 4.0, 5.0, 5.0, 5.0, 4.0, 2.0, 1.0, 0.8, 0.8, 0.8, 0.8,
    0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 1.0, 2.0,
)  # fmt: skip

CONSENT_RESULTS: tuple[str, ...] = ("accept", "reject", "ban")
CONSENT_WEIGHTS: tuple[float, ...] = (0.62, 0.35, 0.03)
