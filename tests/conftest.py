"""Shared fixtures: a real Postgres database, a real Redis broker and a real Celery worker.

The environment is set before any service module reads its settings, so the API under test
and the worker subprocess see the same database, broker and store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="modelpress-test-"))
POSTGRES_ADMIN_URL = os.environ.get(
    "MODELPRESS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_DATABASE = os.environ.get("MODELPRESS_TEST_DATABASE", "modelpress_test")
os.environ.update(
    MODELPRESS_HOME=str(_HOME),
    MODELPRESS_DATABASE_URL=POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + TEST_DATABASE,
    MODELPRESS_BROKER_URL=os.environ.get("MODELPRESS_TEST_REDIS", "redis://127.0.0.1:6379/15"),
    MODELPRESS_BENCH_TIME_BUDGET_S="0.4",
    MODELPRESS_BENCH_WARMUP_RUNS="2",
    MODELPRESS_BENCH_MIN_RUNS="5",
    MODELPRESS_SWEEP_INTERVAL_S="2",
    MODELPRESS_LEASE_SECONDS="6",
    MODELPRESS_REQUEUE_AFTER_S="8",
    MODELPRESS_MAX_UPLOAD_BYTES=str(8 * 1024 * 1024),
    # Webhook receivers in tests listen on loopback: the operator allow-list lets deliveries reach them.
    MODELPRESS_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
)

pytest_plugins = [
    "tests.fixtures.infrastructure",
    "tests.fixtures.api",
    "tests.fixtures.files",
    "tests.fixtures.clean_tree",
    "tests.fixtures.storage",
]
