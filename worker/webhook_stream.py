"""A network backend for httpcore that dials only checked addresses, every operation under one deadline."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import httpcore

from service.webhooks.addresses import IPAddress

T = TypeVar("T")
_TLS_RECORD_BYTES = 16384


@contextmanager
def _mapped(timeout: type[Exception], failure: type[Exception]) -> Iterator[None]:
    """Socket and TLS errors as the httpcore exceptions its connection code expects."""
    try:
        yield
    except TimeoutError as exc:  # before OSError: socket.timeout is one of them
        raise timeout("the delivery deadline passed") from exc
    except OSError as exc:
        raise failure(type(exc).__name__) from exc


class DeadlineStream(httpcore.NetworkStream):
    """A TCP stream whose reads, writes and TLS handshake all end by one deadline, however slow the peer.

    A socket timeout alone bounds each read; a peer trickling a byte at a time would renew it forever.
    Here every blocking call gets only the time left, and TLS runs over memory buffers so its
    handshake goes through the same two calls.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()

    def _time_left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def _recv(self, max_bytes: int) -> bytes:
        self._sock.settimeout(self._time_left())
        return self._sock.recv(max_bytes)

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._sock.settimeout(self._time_left())
            view = view[self._sock.send(view) :]

    def _tls_io(self, operation: Callable[[], T]) -> T:
        """Run one TLS operation, moving its records through the socket until it completes."""
        while True:
            try:
                result, wants_input = operation(), False
            except ssl.SSLWantReadError:
                wants_input = True
            pending = self._outgoing.read()
            if pending:
                self._send_all(pending)
            if not wants_input:
                return result
            data = self._recv(_TLS_RECORD_BYTES)
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    # httpcore's per-call timeouts are ignored on purpose: the one deadline decides.
    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ARG002
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            if self._tls is None:
                return self._recv(max_bytes)
            tls = self._tls
            try:
                return self._tls_io(lambda: tls.read(max_bytes))
            except ssl.SSLZeroReturnError:
                return b""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ARG002
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            if self._tls is None:
                self._send_all(buffer)
            else:
                tls = self._tls
                self._tls_io(lambda: tls.write(buffer))

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ARG002
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host: SNI and certificate checks use the name, not the IP dialled.
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            self._tls = ssl_context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
            self._tls_io(self._tls.do_handshake)
        return self

    def get_extra_info(self, info: str) -> Any:
        return {"socket": self._sock, "ssl_object": self._tls}.get(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Connects to the addresses already resolved and checked, never resolving the URL's host again."""

    def __init__(self, addresses: Sequence[IPAddress], deadline: float) -> None:
        self._addresses = addresses
        self._deadline = deadline

    # The host is the one argument never looked at: resolving it again would undo the check.
    def connect_tcp(
        self,
        host: str,  # noqa: ARG002
        port: int,
        timeout: float | None = None,  # noqa: ARG002
        local_address: str | None = None,  # noqa: ARG002
        socket_options: Any = None,  # noqa: ARG002
    ) -> httpcore.NetworkStream:
        failure: Exception = httpcore.ConnectError("no address to connect to")
        for address in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the delivery deadline passed")
            try:
                sock = socket.create_connection((str(address), port), timeout=left)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout("the delivery deadline passed") from exc
            except OSError as exc:
                failure = httpcore.ConnectError(type(exc).__name__)
                continue
            return DeadlineStream(sock, self._deadline)
        raise failure
