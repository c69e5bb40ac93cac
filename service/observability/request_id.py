"""X-Request-ID in and out: accept a sane caller id or make one, bind it to every log line."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability.logging import get_logger

HEADER = "x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

log = get_logger("modelpress.api")


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID when it is short and plain, else a new random id."""
    for name, value in scope.get("headers", []):
        if name == HEADER.encode():
            candidate = value.decode("latin-1")
            if _SANE.match(candidate):
                return candidate
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware (streams pass through untouched) that tags requests and logs each one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the id for the request's duration and echo it in the response headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    route=getattr(scope.get("route"), "path", None),
                    status=status[0],
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
