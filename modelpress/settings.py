"""Defaults the clients share: timeouts, the user agent, deadlines."""

from __future__ import annotations

import time

import httpx

DEFAULT_TIMEOUT_S = 60.0
# The server sends a keep-alive comment every 15 s: a silence of 90 s means the stream is dead.
EVENTS_TIMEOUT = httpx.Timeout(60.0, read=90.0)
USER_AGENT = "modelpress-python/0.1"


def deadline_of(timeout: float | None) -> float | None:
    """A monotonic deadline `timeout` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


def past(deadline: float | None) -> bool:
    """Whether the deadline has passed."""
    return deadline is not None and time.monotonic() > deadline


def remaining(deadline: float | None) -> float | None:
    """Seconds left until the deadline (None: no deadline)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
