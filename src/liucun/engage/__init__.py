"""Engage: profiles, tags and segments; campaigns with holdouts; consent-respecting subscribe
messages through the WeChat, Alipay and webhook channels; the win-back flows."""
