"""An API whose broker is unreachable still takes jobs; the sweeper publishes them later."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.live import LiveApi, drop_tenant, free_port, start_api, stop_api
from tests.fixtures.api import Api, new_key


@pytest.fixture(scope="module")
def cut_off(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """An API process pointed at a Redis port where nothing listens."""
    api = start_api(
        tmp_path_factory.mktemp("broker-down") / "api.log",
        MODELPRESS_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    yield api
    stop_api(api)


def test_jobs_are_recorded_while_the_broker_is_down_and_run_later(
    cut_off: LiveApi, app_client: Any, worker: Any, mlp_onnx: Path
) -> None:
    key = new_key()
    try:
        with cut_off.client(key, timeout=30) as client:
            model = client.post("/v1/models", files={"file": ("mlp.onnx", mlp_onnx.read_bytes())})
            started = time.monotonic()
            job = client.post(
                "/v1/jobs",
                json={"model_id": model.json()["id"], "steps": [{"technique": "quantize.dynamic"}]},
            )
            submit_seconds = time.monotonic() - started
            ready = client.get("/readyz")

        assert model.status_code == 201, model.text
        assert job.status_code == 202, job.text
        assert submit_seconds < 10
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"].startswith("unavailable")
        assert ready.json()["checks"]["database"] == "ok"
        # The session's worker, on the real broker, finds both by their rows: ingest, then the job.
        finished = Api(app_client, key).wait_job(job.json()["id"], timeout=120)
        assert finished["status"] == "succeeded", finished["error"]
    finally:
        drop_tenant(key)
