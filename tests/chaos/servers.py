"""Stopping and starting the real Redis and Postgres servers (as .ci/run starts them)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from service.settings import get_settings


def _redis_address() -> tuple[str, str]:
    parts = urlsplit(get_settings().resolved_broker_url)
    return parts.hostname or "127.0.0.1", str(parts.port or 6379)


def redis_up() -> bool:
    """Whether Redis answers PING."""
    host, port = _redis_address()
    ping = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "ping"], capture_output=True, text=True, check=False
    )
    return ping.stdout.strip() == "PONG"


def stop_redis() -> None:
    """SHUTDOWN NOSAVE: Redis keeps nothing on disk here, so every queued message is lost."""
    host, port = _redis_address()
    subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "SHUTDOWN", "NOSAVE"], capture_output=True, check=False
    )
    _wait(lambda: not redis_up(), "Redis to stop")


def start_redis() -> None:
    """Start Redis with the command .ci/run uses."""
    _, port = _redis_address()
    for folder in ("/var/lib/redis", "/var/log/redis"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", port,
         "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"],
        check=True,
    )  # fmt: skip
    _wait(redis_up, "Redis to start")


def _cluster() -> str:
    return sorted(path.name for path in Path("/etc/postgresql").iterdir())[0]


def postgres_up() -> bool:
    """Whether Postgres accepts connections."""
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


def stop_postgres() -> None:
    """Stop the cluster (fast mode: open sessions are terminated)."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _cluster(), "main", "stop", "-m", "fast"],
                   check=True, capture_output=True)  # fmt: skip
    _wait(lambda: not postgres_up(), "Postgres to stop")


def start_postgres() -> None:
    """Start the cluster again."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _cluster(), "main", "start"],
                   check=True, capture_output=True)  # fmt: skip
    _wait(postgres_up, "Postgres to start")


def ensure_up() -> None:
    """Bring back whichever server a failed test left stopped."""
    if not redis_up():
        start_redis()
    if not postgres_up():
        start_postgres()


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)
