"""`GET /healthz`: 200 once the server accepts events."""

from __future__ import annotations

from fastapi import APIRouter

from liucun import __version__
from liucun.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok", version=__version__)
