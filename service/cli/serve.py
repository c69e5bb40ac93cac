"""`modelpress serve`: migrate, then run the API beside a supervised Celery worker and sweeper."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import typer
import uvicorn
from sqlalchemy import select

from service import migrate as migrations
from service.cli.supervisor import Child, Supervisor
from service.db import new_session
from service.http_server import uvicorn_options
from service.observability.logging import configure_logging
from service.settings import Settings, get_settings
from service.storage import get_store
from service.tenants import service as tenants_service
from service.tenants.orm import Tenant
from service.workers import registry


def migrate() -> None:
    """Bring the database schema up to date."""
    migrations.upgrade()
    print("database is at the latest schema")


def _first_key() -> None:
    """On a fresh database, create the 'default' tenant and show its key once (it is stored hashed only).

    The key is never written to a file: the data folder is shared with the workers, and a key in it
    is one file read away from a model's code.
    """
    with new_session() as session:
        if session.scalar(select(Tenant.id).limit(1)) is not None:
            return
        key = tenants_service.create_key(session=session, tenant_name="default")
    print(
        f"\n  API key for tenant 'default' (shown once, stored only hashed): {key}\n"
        f"  export KEY={key}   # more keys: modelpress keys create --tenant NAME\n",
        flush=True,
    )


def worker_command(
    *, hostname: str, beat_schedule: Path | None, queues: str = "cpu,gpu,webhooks", concurrency: int = 2
) -> list[str]:
    """The Celery worker command line; with a beat schedule file the sweeper's beat runs inside it."""
    command = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", queues,
        "--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", hostname,
    ]  # fmt: skip
    if beat_schedule is not None:
        command += ["-B", "--schedule", str(beat_schedule)]
    return command


def supervised_children() -> list[Child]:
    """The embedded worker and the sweeper, each in a process the supervisor restarts."""
    worker = Child(
        "worker",
        worker_command(hostname=f"modelpress-{os.getpid()}@%h", beat_schedule=None),
        on_death=_forget_worker,
    )
    # Apart from the worker it must recover from: SIGKILL of the worker leaves the sweeper running.
    sweeper = Child("sweeper", [sys.executable, "-m", "worker.sweep_loop"])
    return [worker, sweeper]


def _forget_worker(pid: int) -> None:
    """A dead worker's row goes at once, so /readyz does not wait for its heartbeat to age out."""
    with new_session() as session:
        registry.forget(session, hostname=socket.gethostname(), pid=pid)


def _remove_leftovers(settings: Settings) -> None:
    """Temporary uploads of a killed API: in embedded mode this is the only API, so all are stale."""
    removed = get_store().remove_stale_uploads(0 if settings.is_embedded else settings.stale_temp_after_s)
    if removed:
        print(f"removed {removed} unfinished uploads left by an earlier run", flush=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, envvar="PORT", help="Port to listen on"),
    worker: bool = typer.Option(True, help="Also start (and supervise) a Celery worker and the sweeper"),
) -> None:
    """Run the API (and, by default, a worker) until interrupted."""
    migrations.upgrade()
    _first_key()
    settings = get_settings()
    configure_logging(settings)
    _remove_leftovers(settings)
    # The worker shares the API's cores here: compressions yield the CPU to requests, so polling
    # clients stay answered within a few hundred milliseconds while a job runs (bench/LOAD.md).
    os.environ.setdefault("MODELPRESS_WORKER_NICENESS", "10")
    supervisor = Supervisor(supervised_children()) if worker else None
    if supervisor is not None:
        supervisor.start()
    # uvicorn re-raises the signal that stopped it; as SystemExit the children below are stopped too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            "service.main:create_app",
            factory=True,
            host=host,
            port=port,
            log_level="info",
            access_log=False,  # the request-id middleware logs every request once, with its id
            **uvicorn_options(get_settings()),
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
