"""Loyalty routes: social (client `/v1/loyalty/...`, admin `/admin/v1/apps/{app}/loyalty/...`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["loyalty"])
