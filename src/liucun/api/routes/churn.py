"""`/admin/v1/apps/{app}/churn/...`: churn-risk scores and models, behind an admin token."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin/v1", tags=["churn"])
