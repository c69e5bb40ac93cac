"""`modelpress serve`: migrate, then run the API and a real Celery worker side by side."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import typer
import uvicorn
from sqlalchemy import select

from service import migrate as migrations
from service.db import new_session
from service.settings import get_settings
from service.tenants import service as tenants_service
from service.tenants.orm import Tenant


def migrate() -> None:
    """Bring the database schema up to date."""
    migrations.upgrade()
    print("database is at the latest schema")


def _first_key() -> None:
    """On a fresh database, create the 'default' tenant and show its key once."""
    settings = get_settings()
    with new_session() as session:
        if session.scalar(select(Tenant.id).limit(1)) is not None:
            return
        key = tenants_service.create_key(session=session, tenant_name="default")
    key_file = settings.home / "api-key.txt"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    print(f"\n  API key for tenant 'default': {key}\n  (also saved to {key_file})\n", flush=True)


def worker_command(
    *, hostname: str, beat_schedule: Path | None, queues: str = "cpu,gpu", concurrency: int = 2
) -> list[str]:
    """The Celery worker command line; with a beat schedule file the sweeper's beat runs inside it."""
    command = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", queues,
        "--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", hostname,
    ]  # fmt: skip
    if beat_schedule is not None:
        command += ["-B", "--schedule", str(beat_schedule)]
    return command


def start_worker() -> subprocess.Popen[bytes]:
    """A real Celery worker process with the sweeper's beat embedded."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    command = worker_command(
        hostname=f"modelpress-{os.getpid()}@%h", beat_schedule=settings.home / "celerybeat-schedule"
    )
    return subprocess.Popen(command, start_new_session=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, envvar="PORT", help="Port to listen on"),
    worker: bool = typer.Option(True, help="Also start a Celery worker"),
) -> None:
    """Run the API (and, by default, a worker) until interrupted."""
    migrations.upgrade()
    _first_key()
    process = start_worker() if worker else None
    # uvicorn re-raises the signal that stopped it; as SystemExit the worker below is stopped too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        # No access log: the API logs every request itself, with its request id and duration.
        uvicorn.run(
            "service.main:create_app", factory=True, host=host, port=port, log_level="info", access_log=False
        )
    finally:
        if process is not None:
            # Celery's main process stops its pool itself (warm shutdown); the group kill is the fallback.
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
