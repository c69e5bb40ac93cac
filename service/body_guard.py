"""Close the connection after answering a request whose long body was not read to the end.

uvicorn reads, and throws away, the rest of a body the app left unread so that it can reuse the
connection: a 2 GiB upload refused after 8 MiB would still be read whole, so such a connection is
closed. A short remainder is left to uvicorn instead: closing a socket with unread bytes sends a
TCP reset, and a reset that reaches the client before it reads the answer destroys the answer
(the client sees "connection reset" instead of, say, a 503).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The unread remainder uvicorn may read and discard to keep the connection; past it, close.
KEEP_ALIVE_REMAINDER_BYTES = 1 << 20


class CloseUnreadBody:
    """ASGI middleware adding `Connection: close` to answers sent before a long body ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, watching how much of its body the app consumed."""
        if scope["type"] != "http" or (declared := _declared_length(scope)) == 0:
            await self.app(scope, receive, send)
            return
        finished = False
        consumed = 0
        # A client waiting for "100 Continue" never sends a body the app did not ask for.
        waits_to_send = (b"expect", b"100-continue") in [(k, v.lower()) for k, v in scope.get("headers", [])]

        async def watched_receive() -> Message:
            nonlocal finished, consumed
            message = await receive()
            consumed += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not finished:
                short = declared is not None and declared - consumed <= KEEP_ALIVE_REMAINDER_BYTES
                if not short or (waits_to_send and consumed == 0):
                    headers: list[Any] = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, watched_receive, guarded_send)


def _declared_length(scope: Scope) -> int | None:
    """The body's declared length: None when chunked or unreadable, 0 when there is none."""
    headers = dict(scope.get("headers", []))
    if b"transfer-encoding" in headers:
        return None
    length = headers.get(b"content-length", b"0")
    return int(length) if length.isdigit() else None
