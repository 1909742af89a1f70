"""Engagement metrics over the event store's daily rollup."""

from liucun.analytics.headline import Headline, headline

__all__ = ["Headline", "headline"]
