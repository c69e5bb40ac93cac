"""Request counts and latencies by route template and status, in this process's registry."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

REQUESTS = Counter(
    "modelpress_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "modelpress_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response starts streaming), by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
UNMATCHED = "<unmatched>"


class HttpMetricsMiddleware:
    """Pure ASGI middleware; labels by template (/v1/jobs/{job_id}) so ids never explode the series.

    It also answers `Server-Timing: total;dur=<ms>`, the time until the response started.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and count it once its route and status are known."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]
        started = time.perf_counter()
        elapsed = [0.0]

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                elapsed[0] = time.perf_counter() - started
                # Server time as the client can see it (queue wait included), for load benches.
                timing = f"total;dur={elapsed[0] * 1000:.2f}".encode()
                message["headers"] = [*message.get("headers", []), (b"server-timing", timing)]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "")
            REQUESTS.labels(method, route, str(status[0])).inc()
            LATENCY.labels(method, route).observe(elapsed[0] or time.perf_counter() - started)
