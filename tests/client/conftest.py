"""A real API server on loopback (uvicorn subprocess) with the real worker, and a finished job.

The CLI, the HTML report, webhooks and /metrics are tested against it the way a user meets them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.load_servers import free_port, wait_ready
from modelpress import Client
from tests.fixtures.api import new_key
from tests.fixtures.infrastructure import ROOT

# Webhook retries back off from this base (0.5 s, 1 s, ...); the worker subprocess reads it at start.
os.environ.setdefault("MODELPRESS_WEBHOOK_BACKOFF_S", "0.5")


@dataclass(frozen=True)
class LiveServer:
    """The URL of the server and the file its JSON logs go to."""

    url: str
    log_path: Path


@pytest.fixture(scope="session")
def live_server(worker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """uvicorn serving the app on 127.0.0.1 with the test database, broker and store."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "api.log"
    command = [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, path="/healthz", timeout_s=30, log=log_path)
    except RuntimeError:
        process.kill()
        raise
    yield LiveServer(url, log_path)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def tenant_key(live_server: LiveServer) -> str:
    """An API key of a tenant used by this package's tests."""
    return new_key()


@pytest.fixture
def client(live_server: LiveServer, tenant_key: str) -> Iterator[Client]:
    """The SDK's client, talking to the live server."""
    with Client(live_server.url, tenant_key) as api:
        yield api


@pytest.fixture(scope="session")
def ready_model(live_server: LiveServer, tenant_key: str, mlp_onnx: Path) -> dict[str, Any]:
    """The digits MLP, ingested."""
    with Client(live_server.url, tenant_key) as api:
        model = api.wait_model(api.upload_model(mlp_onnx, name="digits-mlp").id, timeout=120)
    assert model.status == "ready", model
    return model.raw


@pytest.fixture(scope="session")
def digits_dataset(live_server: LiveServer, tenant_key: str, digits_npz: Path) -> dict[str, Any]:
    """The labelled digits test split."""
    with Client(live_server.url, tenant_key) as api:
        return api.upload_dataset(digits_npz).raw


@pytest.fixture(scope="session")
def finished_job(
    live_server: LiveServer, tenant_key: str, ready_model: dict[str, Any], digits_dataset: dict[str, Any]
) -> dict[str, Any]:
    """Magnitude pruning then dynamic int8, measured on labelled digits at three batch sizes."""
    body = {
        "model_id": ready_model["id"],
        "steps": [
            {"technique": "prune.magnitude", "params": {"sparsity": 0.5}},
            {"technique": "quantize.dynamic", "params": {"per_channel": True}},
        ],
        "evaluation": {"dataset_id": digits_dataset["id"], "metric": "top1", "batch_sizes": [1, 8, 32]},
    }
    with Client(live_server.url, tenant_key) as api:
        job = api.wait(api.create_job(body).id, interval=0.5, timeout=180)
    assert job.status == "succeeded", job
    return job.raw
