"""A deployment with no shared disk: an API process and N Celery workers, each in its own folders.

They share only the services: Postgres (a database of their own), a private Redis and the store
(an S3 bucket, or a folder for the local-store comparison). Each worker gets its own home, scratch
folder and TMPDIR; none of them names the API's folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.chaos.live import LiveApi, start_api, stop_api
from tests.chaos.private_servers import PrivateRedis
from tests.fixtures.infrastructure import ROOT, start_worker, stop_worker

POSTGRES_ADMIN = os.environ.get("MODELPRESS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Deployment:
    """The running API, its key and each worker's private folder."""

    api: LiveApi
    key: str
    worker_folders: list[Path]
    api_home: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        """An HTTP client for the API with this deployment's key."""
        return self.api.client(self.key)


def _recreate_database(name: str) -> str:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return "postgresql+psycopg://" + POSTGRES_ADMIN.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"modelpress {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip().splitlines()[-1].strip()


@contextmanager
def deployment(
    folder: Path,
    *,
    storage_url: str,
    database: str,
    workers: int = 2,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    """Start Redis, a fresh database, `workers` Celery workers and an API; stop them all afterwards."""
    redis = PrivateRedis()
    started: list[subprocess.Popen[bytes]] = []
    api: LiveApi | None = None
    base = {k: v for k, v in os.environ.items() if k not in {"MODELPRESS_STORAGE_DIR", "MODELPRESS_HOME"}}
    try:
        redis.start()
        base |= {
            "MODELPRESS_DATABASE_URL": _recreate_database(database),
            "MODELPRESS_BROKER_URL": redis.url(0),
            "MODELPRESS_STORAGE_URL": storage_url,
            **(extra_env or {}),
        }
        api_home = folder / "api"
        api_env = base | {"MODELPRESS_HOME": str(api_home)}
        _cli(api_env, "migrate")
        key = _cli(api_env, "keys", "create", "--tenant", "scale")
        worker_folders = []
        for index in range(workers):
            own = folder / f"worker-{index}"
            (own / "tmp").mkdir(parents=True)
            env = base | {
                "MODELPRESS_HOME": str(own / "home"),
                "MODELPRESS_SCRATCH_DIR": str(own / "scratch"),
                "TMPDIR": str(own / "tmp"),
            }
            started.append(
                start_worker(own / "worker.log", beat=index == 0, concurrency=concurrency, env=env)
            )
            worker_folders.append(own)
        api = start_api(folder / "api.log", **api_env)
        yield Deployment(api, key, worker_folders, api_home, base)
    finally:
        if api is not None:
            stop_api(api)
        for process in started:
            stop_worker(process)
        redis.remove()
