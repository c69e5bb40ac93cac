"""Observability: structured logs with request and job ids, and Prometheus metrics."""

from __future__ import annotations

from fastapi import FastAPI

from service.observability.http_metrics import HttpMetricsMiddleware
from service.observability.logging import configure_logging
from service.observability.request_id import RequestIdMiddleware
from service.observability.router import router
from service.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Add the /metrics route and the middlewares; set up JSON logging for this process."""
    configure_logging(settings)
    app.include_router(router)
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)  # added last, so it runs first and every log line has the id


__all__ = ["configure_logging", "install"]
