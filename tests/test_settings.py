"""Settings are checked at start-up (bounds, the logging levels, cross-field rules) and reach the routes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.deps import SettingsDep
from service.main import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lease_seconds", 4),
        ("max_attempts", 0),
        ("max_upload_bytes", 0),
        ("sweep_interval_s", 0),
        ("bench_threads", 0),
        ("quota_concurrent_jobs", 0),
        ("webhook_max_attempts", 0),
        ("sandbox_memory_bytes", 1024),
        ("log_level", "LOUD"),
        ("log_level", "notset"),
    ],
)
def test_out_of_bounds_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**{field: value})

    assert [error["loc"] for error in refused.value.errors()] == [(field,)]


def test_log_levels_are_read_in_any_case() -> None:
    assert Settings(log_level="warning").log_level == "WARNING"
    assert Settings(lease_seconds=5).lease_seconds == 5


def test_a_worker_timeout_not_above_the_heartbeat_is_refused() -> None:
    with pytest.raises(ValidationError, match="worker_timeout_s .* must exceed worker_heartbeat_s"):
        Settings(worker_heartbeat_s=30, worker_timeout_s=30)


def test_invalid_settings_stop_the_api_at_start_with_every_problem_named() -> None:
    env = {**os.environ, "MODELPRESS_LEASE_SECONDS": "2", "MODELPRESS_LOG_LEVEL": "chatty"}
    probe = "import service.main; service.main.create_app()"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "MODELPRESS_LEASE_SECONDS=2: Input should be greater than or equal to 5" in result.stderr
    assert "MODELPRESS_LOG_LEVEL=chatty: Value error, must be one of DEBUG, INFO" in result.stderr


def test_routes_get_the_settings_the_app_was_built_with() -> None:
    app = create_app(Settings(lease_seconds=7, quota_concurrent_jobs=3))

    @app.get("/probe-settings")
    def probe(settings: SettingsDep) -> dict[str, int]:
        return {"lease_seconds": settings.lease_seconds, "jobs": settings.quota_concurrent_jobs}

    with TestClient(app) as client:
        assert client.get("/probe-settings").json() == {"lease_seconds": 7, "jobs": 3}
