"""`/admin/v1/apps/{app}/playbook`: issue 6's playbook endpoints, behind an admin token."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin/v1", tags=["playbook"])
