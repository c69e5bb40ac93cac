"""Send a hostile request over a raw socket until the server answers; measure time and the API's memory."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.chaos.live import LiveApi, rss_bytes
from tests.chaos.streams import RssSampler

MIB = 1024 * 1024


@dataclass
class Outcome:
    """What came back, how fast, how much was sent first, and how much the API process grew."""

    head: bytes
    seconds: float
    sent: int
    growth: int

    @property
    def status(self) -> int:
        """The status code of the answer (0 when none came)."""
        parts = self.head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def push(server: LiveApi, pieces: Iterator[bytes], *, deadline_s: float = 60) -> Outcome:
    """Write the request's pieces until the server answers or stops reading; keep sampling its RSS.

    The clock starts with the first byte and stops at the first byte of the answer.
    """
    host, port = server.url.removeprefix("http://").split(":")
    baseline = rss_bytes(server.process.pid)
    answer, sent, answered_at = b"", 0, None
    with RssSampler(server.process.pid) as sampler, socket.create_connection((host, int(port)), 30) as conn:
        conn.setblocking(False)
        started = time.monotonic()
        pending, exhausted = b"", False
        while time.monotonic() - started < deadline_s:
            want_write = answered_at is None and not exhausted
            readable, writable, _ = select.select([conn], [conn] if want_write else [], [], 1)
            if readable:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                answered_at = answered_at or time.monotonic()
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    break
            if writable:
                if not pending:
                    pending = next(pieces, b"")
                    exhausted = not pending
                    continue
                try:
                    written = conn.send(pending)
                except OSError:
                    break  # the server closed: read what it said, if anything
                sent += written
                pending = pending[written:]
        if not answer:
            conn.setblocking(True)
            conn.settimeout(5)
            try:
                answer = conn.recv(65536)
                answered_at = answered_at or time.monotonic()
            except OSError:
                pass
        # Let the server finish with the request before its memory is read for the last time.
        time.sleep(0.3)
    growth = max(sampler.peak, rss_bytes(server.process.pid)) - baseline
    return Outcome(answer, (answered_at or time.monotonic()) - started, sent, growth)


def repeated(piece: bytes, total: int) -> Iterator[bytes]:
    """`piece` again and again, `total` bytes in all."""
    while total > 0:
        yield piece[:total]
        total -= len(piece)


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """The pieces as HTTP/1.1 chunks (no Content-Length anywhere)."""
    for piece in pieces:
        yield b"%x\r\n" % len(piece) + piece + b"\r\n"
    yield b"0\r\n\r\n"
