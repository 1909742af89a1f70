"""`/admin/v1/apps/{app}/lifecycle`: issue 6's lifecycle endpoints, behind an admin token."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin/v1", tags=["lifecycle"])
