"""The servers a load run talks to: the embedded `modelpress serve`, or Postgres + Redis + uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """This environment without any MODELPRESS_ setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env.update(values)
    return env


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    path: str = "/readyz",
    timeout_s: float = 120,
    log: Path | None = None,
) -> None:
    """Poll `url + path` until it answers 200; RuntimeError (with the log's tail) if the server dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"server at {url} did not become ready ({path})\n{tail}".rstrip())
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then wait."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextmanager
def embedded(home: Path, **settings: str) -> Iterator[tuple[str, str]]:
    """`modelpress serve` (API + its worker) in a fresh home, defaults but these; yields (url, key)."""
    port = free_port()
    env = clean_env(MODELPRESS_HOME=str(home), PORT=str(port), **settings)
    log = home.parent / "embedded.log"
    process = _start([sys.executable, "-m", "service.cli.main", "serve"], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log=log)
        # The first key is printed once and never stored: make one for this run from the same home.
        created = subprocess.run(
            [sys.executable, "-m", "service.cli.main", "keys", "create", "--tenant", "load-bench"],
            env=env, capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        yield url, created.stdout.decode().strip().splitlines()[-1].strip()
    finally:
        stop(process)


def _recreate_database(name: str) -> str:
    subprocess.run(
        ["psql", POSTGRES_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True
    )
    subprocess.run(["psql", POSTGRES_ADMIN, "-qc", f"CREATE DATABASE {name}"], check=True)
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name


@contextmanager
def production(
    home: Path,
    *,
    database: str,
    redis_url: str,
    processes: int,
    max_concurrent: int,
    store: dict[str, str] | None = None,
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Postgres + Redis, a Celery worker and `uvicorn --workers N`; yields (url, key, settings used).

    `store`: extra environment for the artifact store (MODELPRESS_STORAGE_URL and the AWS variables
    of an S3-compatible server); the local folder under `home` by default.
    """
    settings = {
        "MODELPRESS_HOME": str(home),
        "MODELPRESS_DATABASE_URL": _recreate_database(database),
        "MODELPRESS_BROKER_URL": redis_url,
        "MODELPRESS_MAX_CONCURRENT_REQUESTS": str(max_concurrent),
        "MODELPRESS_LOG_LEVEL": "WARNING",
    }
    env = {**clean_env(**settings), **(store or {})}
    modelpress = [sys.executable, "-m", "service.cli.main"]
    subprocess.run([*modelpress, "migrate"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [*modelpress, "keys", "create", "--tenant", "bench"], env=env, check=True, capture_output=True
    )
    port = free_port()
    worker = _start(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "cpu", "--concurrency", "1"],
        env,
        home / "worker.log",
    )
    api = _start(
        [
            sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(processes), "--no-access-log",
        ],
        env,
        home / "api.log",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, api, log=home / "api.log")
        yield url, created.stdout.decode().strip(), settings
    finally:
        stop(api)
        stop(worker)
