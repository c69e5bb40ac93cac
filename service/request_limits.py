"""Bound every request before the app parses it: header count, and body size outside the upload routes.

Header *bytes* are bounded by the server (uvicorn's h11 `max_incomplete_event_size`, see
service/http_server.py); by the time a request reaches this middleware its headers are already in
memory, but their count is still checked here so that no route walks thousands of them. Bodies of
every route except the two streaming uploads are read here, counted as they arrive (a chunked body
declares no length), and refused with 413 past the limit without reading the rest.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, Problem, TooManyHeaders
from service.handlers import problem_response

# Routes that stream their multipart bodies to the store with their own caps (service/uploads.py).
STREAMING_UPLOADS = frozenset({("POST", "/v1/models"), ("POST", "/v1/datasets")})


class RequestLimits:
    """ASGI middleware: 431 past `max_headers` headers, 413 past `max_body_bytes` of a non-upload body."""

    def __init__(self, app: ASGIApp, *, max_headers: int, max_body_bytes: int) -> None:
        self.app, self.max_headers, self.max_body_bytes = app, max_headers, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the headers, then buffer (at most the limit of) a non-upload body and replay it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if len(headers) > self.max_headers:
            detail = f"the request has {len(headers)} header fields; at most {self.max_headers} are allowed"
            await _refuse(scope, receive, send, TooManyHeaders(detail))
            return
        if (scope["method"], scope["path"].rstrip("/")) in STREAMING_UPLOADS:
            await self.app(scope, receive, send)
            return
        body = await self._bounded_body(scope, receive, send)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _bounded_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once a 413 was sent (or the client left)."""
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than the limit of {self.max_body_bytes} bytes"
        await _refuse(scope, receive, send, PayloadTooLarge(detail, limit=self.max_body_bytes))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body over once, then waits on the real one (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    # `Connection: close`: the server must not read (and throw away) the rest of a refused body.
    document = problem.to_document(instance=scope.get("path"))
    await problem_response(document, headers={"Connection": "close"})(scope, receive, send)
