"""A lean HTTP/1.1 load generator: keep-alive connections sending requests back to back.

Written on raw asyncio streams because it shares the machine's cores with the server: an HTTP
client library would spend more CPU per request than the API under test. Each connection is one
client that sends its next request as soon as the previous answer has arrived (no pause).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

SERVER_TIME = re.compile(rb"total;dur=([0-9.]+)")


@dataclass
class Sample:
    """One request: its path, status, latency seen by the client, server time (ms) if reported."""

    path: str
    status: int
    latency_s: float
    server_ms: float | None


@dataclass
class Plan:
    """What the clients send: paths in turn, with headers; etag=True sends If-None-Match back."""

    host: str
    port: int
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = False


async def _one_client(plan: Plan, deadline: float, samples: list[Sample], offset: int) -> None:
    reader, writer = await asyncio.open_connection(plan.host, plan.port)
    base = "".join(f"{name}: {value}\r\n" for name, value in plan.headers.items())
    etags: dict[str, str] = {}
    turn = offset
    try:
        while time.monotonic() < deadline:
            path = plan.paths[turn % len(plan.paths)]
            turn += 1
            conditional = f"If-None-Match: {etags[path]}\r\n" if path in etags else ""
            request = f"GET {path} HTTP/1.1\r\nHost: {plan.host}\r\n{base}{conditional}\r\n"
            started = time.monotonic()
            try:
                writer.write(request.encode())
                status, head = await _read_answer(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                samples.append(Sample(path, 0, time.monotonic() - started, None))
                writer.close()
                reader, writer = await asyncio.open_connection(plan.host, plan.port)
                continue
            timing = SERVER_TIME.search(head)
            server_ms = float(timing.group(1)) if timing else None
            samples.append(Sample(path, status, time.monotonic() - started, server_ms))
            if plan.etag and (tag := _header(head, b"etag")):
                etags[path] = tag
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = _header(head, b"content-length")
    if length:
        await reader.readexactly(int(length))
    elif b"chunked" in (_header(head, b"transfer-encoding") or "").encode():
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status, head


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def run(plan: Plan, clients: int, duration_s: float) -> list[Sample]:
    """Run `clients` connections for duration_s; every request's sample."""

    async def main() -> list[Sample]:
        samples: list[Sample] = []
        deadline = time.monotonic() + duration_s
        await asyncio.gather(*(_one_client(plan, deadline, samples, i) for i in range(clients)))
        return samples

    return asyncio.run(main())
