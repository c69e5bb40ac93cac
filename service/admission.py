"""Admission control: a bounded number of requests at once, the rest wait briefly or get a 503.

Without it every request is accepted, each holds a database connection while it waits for a
thread, and past the pool's size requests queue for the pool timeout and then all fail: an
overloaded API hangs instead of saying so. With it the API answers what it can at full speed and
tells the excess, within `queue_wait_s`, to come back later (503, Retry-After, a problem document).
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PROBLEM_MEDIA_TYPE, Overloaded

# Probes and scrapes must answer while the API is saturated: that is when they matter.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = 1


class AdmissionLimit:
    """Pure ASGI middleware admitting `limit` requests at once; reports its wait in Server-Timing."""

    def __init__(self, app: ASGIApp, *, limit: int, wait_s: float) -> None:
        self.app = app
        self.limit = limit
        self.wait_s = wait_s
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # One per event loop: tests drive the same app from several loops, one after the other.
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.limit))
        return self._slots[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wait up to wait_s for a slot, then run the request or shed it."""
        # Event streams live as long as their job: they poll with short sessions of their own, not a slot.
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or scope["path"].endswith("/events"):
            await self.app(scope, receive, send)
            return
        semaphore = self._semaphore()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=self.wait_s)
        except TimeoutError:
            await _shed(scope, send, self.wait_s)
            return
        timing = f"queue;dur={(time.perf_counter() - started) * 1000:.2f}".encode()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"server-timing", timing)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            semaphore.release()


async def _shed(scope: Scope, send: Send, wait_s: float) -> None:
    detail = f"the API is answering as many requests as it can; none was free within {wait_s:g} s"
    document = Overloaded(detail).to_document(instance=scope.get("path"))
    body = json.dumps(document).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
