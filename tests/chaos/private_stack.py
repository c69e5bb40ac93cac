"""A whole ModelPress deployment on private servers: Postgres, Redis, a migrated database, a worker, an API.

The outage tests stop and start these servers while jobs run; nothing of the session's shared
database, broker or store is used, so the other tests (and other sessions) never see the outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.chaos.live import LiveApi, start_api, stop_api
from tests.chaos.private_servers import PrivatePostgres, PrivateRedis
from tests.chaos.shared_servers import identity
from tests.fixtures.infrastructure import ROOT, start_worker, stop_worker

DATABASE = "modelpress"


@dataclass
class PrivateStack:
    """The servers, the API process and the settings its worker and API share."""

    postgres: PrivatePostgres
    redis: PrivateRedis
    api: LiveApi
    env: dict[str, str]

    def create_key(self, tenant: str) -> str:
        """A new API key, made by `modelpress keys create` against the private database."""
        return _cli(self.env, "keys", "create", "--tenant", tenant)

    def identity(self) -> dict[str, str]:
        """The private servers' start time and run id: they change when a test restarts them."""
        return identity(self.postgres.dsn(), self.redis.url())

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A database session on the private database (the test's own settings name the shared one)."""
        engine = create_engine(self.env["MODELPRESS_DATABASE_URL"])
        try:
            with Session(engine) as session:
                yield session
        finally:
            engine.dispose()


@contextmanager
def private_stack(folder: Path) -> Iterator[PrivateStack]:
    """Start private Postgres and Redis, migrate, start a worker (with the sweeper) and an API on them."""
    postgres, redis = PrivatePostgres(), PrivateRedis()
    worker = api = None
    try:
        postgres.start()
        redis.start()
        postgres.create_database(DATABASE)
        env = {
            **os.environ,
            "MODELPRESS_HOME": str(folder / "home"),  # its own artifact store and scratch space
            "MODELPRESS_DATABASE_URL": postgres.url(DATABASE),
            "MODELPRESS_BROKER_URL": redis.url(0),
        }
        _cli(env, "migrate")
        worker = start_worker(folder / "worker.log", env=env)
        api = start_api(folder / "api.log", **env)
        yield PrivateStack(postgres, redis, api, env)
    finally:
        if api is not None:
            stop_api(api)
        if worker is not None:
            stop_worker(worker)
        redis.remove()
        postgres.remove()


def _cli(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "service.cli.main", *args]
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"modelpress {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()
