"""Who the shared Postgres and Redis are right now: a restart between two looks changes the answer."""

from __future__ import annotations

import psycopg
import redis

from service.settings import get_settings
from tests.conftest import POSTGRES_ADMIN_URL


def identity() -> dict[str, str]:
    """The shared Postgres's start time and the shared Redis's run id (new on every start)."""
    with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=5) as connection:
        row = connection.execute("SELECT pg_postmaster_start_time()").fetchone()
    info = redis.Redis.from_url(get_settings().resolved_broker_url, socket_timeout=5).info("server")
    return {"postgres started": str(row[0] if row else None), "redis run_id": str(info["run_id"])}
