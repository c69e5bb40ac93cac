"""Child processes kept running: one that dies is restarted after a backoff that doubles to a cap."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("modelpress.supervisor")


@dataclass
class Child:
    """A command to keep alive, and what to do when one of its runs ends."""

    name: str
    command: list[str]
    on_death: Callable[[int], None] | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts its children, watches them from a thread, restarts the dead, stops all on request."""

    def __init__(
        self,
        children: list[Child],
        *,
        first_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
        poll_s: float = 0.2,
    ) -> None:
        self.children = children
        self.first_backoff_s, self.max_backoff_s = first_backoff_s, max_backoff_s
        self.stable_after_s, self.poll_s = stable_after_s, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start every child and the watching thread."""
        for child in self.children:
            self._spawn(child)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop watching, ask every child to stop (SIGTERM), then kill what is left of each group."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        running = [child.process for child in self.children if child.process is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()  # Celery's warm shutdown stops its own pool
        deadline = time.monotonic() + timeout_s
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_group(process.pid)

    def _spawn(self, child: Child) -> None:
        # A session of its own: the terminal's Ctrl-C reaches only us, and the group can be killed whole.
        child.process = subprocess.Popen(child.command, start_new_session=True)
        child.started_at, child.restart_at = time.monotonic(), None
        log.info("%s started (pid %d)", child.name, child.process.pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            for child in self.children:
                try:
                    self._check(child)
                except Exception:  # the watcher must outlive any one failure
                    log.exception("supervising %s failed", child.name)

    def _check(self, child: Child) -> None:
        now = time.monotonic()
        if child.restart_at is not None:
            if now >= child.restart_at and not self._stop.is_set():
                child.restarts += 1
                self._spawn(child)
            return
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return
        pid = child.process.pid
        _kill_group(pid)  # a SIGKILLed Celery main process leaves its pool processes behind
        if now - child.started_at >= self.stable_after_s:
            child.failures = 0  # it had been up a while: this is a new incident, not a crash loop
        delay = min(self.max_backoff_s, self.first_backoff_s * 2**child.failures)
        child.failures += 1
        child.restart_at = now + delay
        log.warning("%s (pid %d) exited with code %s; restarting in %.0f s", child.name, pid, code, delay)
        if child.on_death is not None:
            child.on_death(pid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
