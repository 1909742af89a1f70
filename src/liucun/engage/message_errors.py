"""Why a consent, message or channel request was refused: a loyalty-style error (stable code,
HTTP status, English and Chinese message), so the API answers it like loyalty's refusals."""

from __future__ import annotations

from liucun.loyalty.errors import LoyaltyError


class MessageError(LoyaltyError):
    """A refused engage-messages request (docs/messages.md lists the codes)."""
