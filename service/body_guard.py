"""Close the connection after answering a request whose body was not read to the end.

Otherwise the server keeps reading, and throwing away, the rest of a refused upload (uvicorn
drains it to reuse the connection): a 2 GiB body refused after 8 MiB would still be read whole.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CloseUnreadBody:
    """ASGI middleware adding `Connection: close` to responses sent before the body ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, watching how much of its body the app consumed."""
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        finished = False

        async def watched_receive() -> Message:
            nonlocal finished
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not finished:
                headers: list[Any] = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, watched_receive, guarded_send)


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    if b"transfer-encoding" in headers:
        return True
    length = headers.get(b"content-length", b"0")
    return not length.isdigit() or int(length) > 0
