"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service import handlers, health, observability, openapi
from service.admission import AdmissionLimit
from service.artifacts.router import router as artifacts_router
from service.body_guard import CloseUnreadBody
from service.catalog.router import router as catalog_router
from service.datasets.router import router as datasets_router
from service.finite import FiniteJSONResponse
from service.jobs.report_router import router as report_router
from service.jobs.router import router as jobs_router
from service.models.report_router import router as model_report_router
from service.models.router import router as models_router
from service.request_limits import RequestLimits
from service.settings import Settings, get_settings
from service.webhooks.router import router as webhooks_router
from service.workers.router import router as workers_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; uvicorn calls this with no arguments (`--factory`)."""
    settings = settings or get_settings()
    # /docs and /redoc with Swagger UI and ReDoc served from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="ModelPress",
        version="0.1.0",
        description="Compress neural networks behind an HTTP API, with an honest before/after comparison.",
        default_response_class=FiniteJSONResponse,
    )
    handlers.install(app)
    for router in (
        health.router,
        catalog_router,
        models_router,
        model_report_router,
        datasets_router,
        jobs_router,
        report_router,
        artifacts_router,
        webhooks_router,
        workers_router,
    ):
        app.include_router(router)
    # Inside the observability middlewares, so that shed requests are logged and counted too.
    app.add_middleware(AdmissionLimit, limit=settings.max_concurrent_requests, wait_s=settings.queue_wait_s)
    observability.install(app, settings)
    openapi.install(app)
    app.add_middleware(CloseUnreadBody)
    # Outermost: a request is bounded before any other middleware or route touches its body.
    app.add_middleware(
        RequestLimits, max_headers=settings.max_header_count, max_body_bytes=settings.max_json_body_bytes
    )
    app.state.settings = settings
    return app
