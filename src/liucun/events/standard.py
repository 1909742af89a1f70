"""The standard events that liucun's own logic reads, with the fields each one requires.

Apps may send any other event name too; those are stored and counted but carry no rules.
The table here is the single source for validation and for `docs/events.md`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StandardEvent:
    name: str
    meaning: str
    required: tuple[str, ...] = ()
    # keys that must be present inside `properties`
    required_properties: tuple[str, ...] = ()


STANDARD_EVENTS: dict[str, StandardEvent] = {
    e.name: e
    for e in (
        StandardEvent(
            "app_open",
            "A visit: the app or mini-program was launched or brought to the front "
            "(WeChat onLaunch/onShow). Counts as one visit in the daily rollup.",
        ),
        StandardEvent("app_hide", "The app went to the background (WeChat onHide)."),
        StandardEvent("page_view", "A page was shown.", required=("page",)),
        StandardEvent(
            "page_leave",
            "A page was left; `duration_ms` is the dwell time on it.",
            required=("page", "duration_ms"),
        ),
        StandardEvent(
            "tap",
            "A tap on a page at (x, y) in CSS pixels; `properties.screen_width` and "
            "`properties.screen_height` let heatmaps normalise by screen size.",
            required=("page", "x", "y"),
        ),
        StandardEvent(
            "page_load",
            "First-screen load of a page: `load_ms` from tap to first render "
            "(WeChat appLaunch / firstRender).",
            required=("page", "load_ms"),
        ),
        StandardEvent(
            "order_paid",
            "An order was paid; `amount` in yuan, exact to the fen.",
            required=("amount",),
            required_properties=("order_id",),
        ),
        StandardEvent(
            "order_refunded",
            "An order was refunded (wholly or partly); `amount` is the refunded sum.",
            required=("amount",),
            required_properties=("order_id",),
        ),
        StandardEvent("share", "The user shared a page or the app."),
        StandardEvent(
            "subscribe_consent",
            "The user answered a subscribe-message prompt: `properties.template_id` and "
            "`properties.result` (accept, reject, ban).",
            required_properties=("template_id", "result"),
        ),
        StandardEvent("check_in", "A daily check-in."),
        StandardEvent(
            "identify",
            "Links the device's `anonymous_id` to the `user_id` (e.g. openid) after login; "
            "metrics count the two as one person from then on.",
            required=("user_id", "anonymous_id"),
        ),
        StandardEvent(
            "alias",
            "Links another id (`properties.alias`) to `user_id`, like PostHog's $create_alias.",
            required=("user_id",),
            required_properties=("alias",),
        ),
    )
}

# The event that counts as one visit in the per-user-per-day rollup.
VISIT_EVENT = "app_open"
PAGE_VIEW_EVENT = "page_view"
ORDER_PAID_EVENT = "order_paid"

PLATFORMS: tuple[str, ...] = ("wechat", "alipay", "douyin", "web", "ios", "android")
