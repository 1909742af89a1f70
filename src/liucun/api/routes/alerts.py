"""`/admin/v1/apps/{app}/alerts`: issue 6's alerts endpoints, behind an admin token."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin/v1", tags=["alerts"])
