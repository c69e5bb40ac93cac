"""A worker process's registration and its heartbeat thread."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from service.db import new_session
from service.workers import registry

log = logging.getLogger("modelpress.workers")


class Heartbeat:
    """Registers this process as a worker and keeps its row fresh until stopped."""

    def __init__(
        self,
        queues: list[str],
        *,
        interval_s: float,
        timeout_s: float,
        hardware: dict[str, Any] | None = None,
        capabilities: dict[str, Any] | None = None,
        on_beat: Callable[[], object] | None = None,
    ) -> None:
        self.queues, self.interval_s, self.timeout_s = queues, interval_s, timeout_s
        self.on_beat = on_beat
        self.hardware = hardware or {}
        self.capabilities = capabilities
        self.worker_id: uuid.UUID | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Register now (so readiness sees the worker at once) and beat in a daemon thread."""
        self._register()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the row: a worker that shuts down cleanly is gone at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.worker_id is not None:
            try:
                with new_session() as session:
                    registry.forget(session, worker_id=self.worker_id)
            except Exception as exc:  # the row ages out anyway
                log.warning("could not remove worker row %s: %s", self.worker_id, exc)

    def _register(self) -> None:
        with new_session() as session:
            registry.prune(session, timeout_s=self.timeout_s)
            self.worker_id = registry.register(
                session,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                hardware=self.hardware,
                capabilities=self.capabilities,
            )
        log.info("worker registered as %s (queues %s)", self.worker_id, ",".join(self.queues))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with new_session() as session:
                    alive = self.worker_id is not None and registry.beat(session, self.worker_id)
                if not alive:  # pruned during a long stall: come back as a new row
                    self._register()
            except Exception as exc:  # a database blip: keep beating, the timeout has slack
                log.warning("worker heartbeat failed: %s", exc)
            if self.on_beat is not None:
                try:
                    self.on_beat()
                except Exception as exc:  # housekeeping must never stop the heartbeat
                    log.warning("worker housekeeping failed: %s", exc)
