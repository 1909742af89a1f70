"""The HTTP application: built by a factory so tests and servers choose their settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from liucun import __version__
from liucun.analytics.params import AnalyticsError
from liucun.api.routes import (
    admin,
    alerts,
    churn,
    engage_campaigns,
    engage_messages,
    engage_segments,
    health,
    ingest,
    lifecycle,
    loyalty_activity,
    loyalty_coupons,
    loyalty_points,
    loyalty_social,
    metrics,
    playbook,
    posthog,
    reports,
    schedule,
)
from liucun.api.routes.engage_segments import segment_error
from liucun.api.routes.loyalty_deps import loyalty_error
from liucun.api.runtime import Runtime
from liucun.config import Settings, parse_daily_at
from liucun.engage.delivery import Deliverer
from liucun.engage.segment_errors import SegmentError
from liucun.events.ingest import PayloadError
from liucun.loyalty.errors import LoyaltyError
from liucun.schedule.scheduler import DailyScheduler
from liucun.web import routes as dashboard


def daily_scheduler(runtime: Runtime) -> DailyScheduler | None:
    """The thread that runs each app's daily job, started (None when `daily_at` is off)."""
    at = parse_daily_at(runtime.settings.daily_at)
    if at is None:
        return None
    scheduler = DailyScheduler(runtime.store, runtime.state, at)
    scheduler.start()
    return scheduler


def message_deliverer(runtime: Runtime) -> Deliverer | None:
    """The thread that sends due subscribe messages (held ones when quiet hours end), started
    (None when `deliver_every_s` is 0)."""
    if runtime.settings.deliver_every_s <= 0:
        return None
    deliverer = Deliverer(
        runtime.state, runtime.settings, runtime.settings.deliver_every_s, lambda: runtime.clock()
    )
    deliverer.start()
    return deliverer


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The liucun server; it opens the stores on start-up unless given a runtime.

    `on_shutdown` runs when the server stops. It runs inside the app's lifespan because
    uvicorn re-raises SIGTERM/SIGINT once it has stopped, so code after `uvicorn.run` may not.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        app.state.runtime = runtime or Runtime.open(settings)
        app.state.runtime.start_workers()
        app.state.runtime.start_reactions()
        scheduler = daily_scheduler(app.state.runtime)
        deliverer = message_deliverer(app.state.runtime)
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if deliverer is not None:
                deliverer.stop()
            if own:
                app.state.runtime.close()
            elif app.state.runtime.reactions is not None:
                app.state.runtime.reactions.stop()
                app.state.runtime.reactions = None
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="liucun",
        version=__version__,
        description="留存 — retention and growth engine: event ingest and admin API.",
        lifespan=lifespan,
    )

    @app.exception_handler(PayloadError)
    async def payload_error(_request: Request, exc: PayloadError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(AnalyticsError)
    async def analytics_error(_request: Request, exc: AnalyticsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.add_exception_handler(LoyaltyError, loyalty_error)
    app.add_exception_handler(SegmentError, segment_error)

    for module in (
        health,
        ingest,
        posthog,
        admin,
        metrics,
        playbook,
        lifecycle,
        churn,
        alerts,
        schedule,
        reports,
        loyalty_points,
        loyalty_activity,
        loyalty_coupons,
        loyalty_social,
        engage_campaigns,
        engage_messages,
        engage_segments,
    ):
        app.include_router(module.router)
    dashboard.install(app)
    return app
