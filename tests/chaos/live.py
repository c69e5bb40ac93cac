"""A real uvicorn API process on loopback, and control over the test session's other workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import delete

from service.artifacts.orm import Artifact
from service.datasets.orm import Dataset
from service.db import new_session
from service.http_server import uvicorn_cli_args
from service.jobs.orm import Job
from service.models.orm import Model
from service.queue import get_celery
from service.settings import get_settings
from service.tenants import service as tenants_service
from service.tenants.orm import Tenant

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("cpu", "gpu")


@dataclass
class LiveApi:
    """A uvicorn process serving the app, and its base URL."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, key: str | None = None, timeout: float = 60) -> httpx.Client:
        """An HTTP client for this server, authenticated as the key's tenant when given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_api(log: Path, **env: str) -> LiveApi:
    """Start `uvicorn service.main:create_app` with extra MODELPRESS_* settings; wait for /healthz."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        *uvicorn_cli_args(get_settings()),  # the server's own request limits, as in production
    ]  # fmt: skip
    handle = log.open("ab")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = LiveApi(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200:
                return api
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_api(api)
    raise RuntimeError(f"the API did not start:\n{log.read_text()[-3000:]}")


def stop_api(api: LiveApi) -> None:
    """Stop the server."""
    if api.process.poll() is None:
        api.process.terminate()
        try:
            api.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            api.process.kill()
            api.process.wait()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


def live_workers() -> list[str]:
    """Host names of the Celery workers consuming the test broker's queues."""
    replies = get_celery().control.inspect(timeout=2).active_queues() or {}
    return sorted(replies)


@contextmanager
def other_workers_paused() -> Iterator[list[str]]:
    """Stop the workers already running from taking jobs, so a test's own worker gets them all."""
    control = get_celery().control
    paused = live_workers()
    for queue in QUEUES:
        if paused:
            control.cancel_consumer(queue, destination=paused, reply=True, timeout=5)
    try:
        yield paused
    finally:
        for queue in QUEUES:
            if paused:
                control.add_consumer(queue, destination=paused, reply=True, timeout=5)


def drop_tenant(key: str) -> None:
    """Delete a test tenant and everything it owns, so no worker picks its leftovers up later."""
    with new_session() as session:
        tenant_id = tenants_service.authenticate(session=session, key=key)
        # Children first: rows that point at artifacts must go before the artifacts do.
        for owned in (Job, Dataset, Model, Artifact):
            session.execute(delete(owned).where(owned.tenant_id == tenant_id))
        session.execute(delete(Tenant).where(Tenant.id == tenant_id))
        session.commit()


BOUNDARY = "modelpress-test-boundary-7f3a9c"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_body(
    chunks: Iterable[bytes], *, filename: str, fields: dict[str, str] | None = None
) -> Iterator[bytes]:
    """A multipart/form-data body (content type MULTIPART) streamed from the file's chunks."""
    for name, value in (fields or {}).items():
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()
