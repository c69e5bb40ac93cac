"""Steady request load on the API from a thread, recording how each request was answered."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class Hammer:
    """Requests in a loop from a thread, recording status, media type and latency of each."""

    def __init__(self, client: httpx.Client, tenant: dict[str, Any]) -> None:
        self.client, self.tenant = client, tenant
        self.results: list[tuple[float, int, str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        calls = [
            lambda: self.client.get("/v1/jobs"),
            lambda: self.client.get(f"/v1/models/{self.tenant['model']}"),
            lambda: self.client.post("/v1/datasets", files={"file": ("tiny.npz", b"PK\x05\x06" + bytes(18))}),
        ]
        turn = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                response = calls[turn % len(calls)]()
                outcome = (response.status_code, response.headers.get("content-type", ""))
            except httpx.TransportError as error:
                outcome = (0, f"{type(error).__name__}: {error}")
            self.results.append((began, *outcome, time.monotonic() - began))
            turn += 1
            time.sleep(0.05)
