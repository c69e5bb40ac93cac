"""Who a Postgres and a Redis server are right now: a restart between two looks changes the answer."""

from __future__ import annotations

import psycopg
import redis

from service.settings import get_settings
from tests.conftest import POSTGRES_ADMIN_URL


def identity(postgres_dsn: str, redis_url: str) -> dict[str, str]:
    """The Postgres server's start time and the Redis server's run id (new on every start)."""
    with psycopg.connect(postgres_dsn, connect_timeout=5) as connection:
        row = connection.execute("SELECT pg_postmaster_start_time()").fetchone()
    info = redis.Redis.from_url(redis_url, socket_timeout=5).info("server")
    return {"postgres started": str(row[0] if row else None), "redis run_id": str(info["run_id"])}


def shared_identity() -> dict[str, str]:
    """The identity of the shared servers the test session points at (127.0.0.1:5432 and :6379 here)."""
    return identity(POSTGRES_ADMIN_URL, get_settings().resolved_broker_url)
