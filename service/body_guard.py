"""Answer a request whose body the app did not read to the end without reading all of it.

uvicorn reads, and throws away, the rest of a body the app left unread so that it can reuse the
connection: a 2 GiB upload refused after 8 MiB would still be read whole. Closing at once is no
better for a small body: closing a socket with unread bytes sends a TCP reset, and a reset that
reaches the client before it reads the answer destroys the answer (the client sees "connection
reset" instead of, say, a 503). So a short remainder is drained before answering and the
connection stays open; only a long one gets `Connection: close`.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a refused request may still cost the server to read, in bytes and in seconds.
DRAIN_LIMIT_BYTES = 1 << 20
DRAIN_LIMIT_SECONDS = 5.0


class CloseUnreadBody:
    """ASGI middleware: drain a short unread body before the answer, or say `Connection: close`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, watching how much of its body the app consumed."""
        declared = _declared_length(scope)
        if scope["type"] != "http" or declared == 0:
            await self.app(scope, receive, send)
            return
        finished = False
        consumed = 0

        async def watched_receive() -> Message:
            nonlocal finished, consumed
            message = await receive()
            consumed += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.start" and not finished:
                remaining = None if declared is None else declared - consumed
                finished = await _drain(receive, remaining)
                if not finished:
                    headers: list[Any] = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, watched_receive, guarded_send)


async def _drain(receive: Receive, remaining: int | None) -> bool:
    """Read and discard the rest of the body if it is short and comes quickly; whether it ended."""
    if remaining is not None and remaining > DRAIN_LIMIT_BYTES:
        return False
    drained = 0
    with anyio.move_on_after(DRAIN_LIMIT_SECONDS):
        while drained <= DRAIN_LIMIT_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
    return False


def _declared_length(scope: Scope) -> int | None:
    """The body's declared length: None when chunked or unreadable, 0 when there is none."""
    headers = dict(scope.get("headers", []))
    if b"transfer-encoding" in headers:
        return None
    length = headers.get(b"content-length", b"0")
    return int(length) if length.isdigit() else None
