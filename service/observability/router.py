"""GET /metrics: the Prometheus text exposition of this API process and the shared state."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.observability.collectors import StateCollector
from service.observability.http_metrics import REGISTRY

REGISTRY.register(StateCollector())

router = APIRouter(tags=["service"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics() -> Response:
    """Requests by route and status, jobs by state, queue depth and step durations."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
