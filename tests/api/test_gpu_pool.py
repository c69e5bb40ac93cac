"""The GPU pool on a CPU machine: classes, refusals, step-by-step routing to a real `gpu` worker, stranding.

This machine has no GPU. Where a test needs the registry to hold a GPU worker, it registers a row that
describes one (`described_gpu`), exactly as a GPU worker's probe would fill it; the Celery worker that
consumes the `gpu` queue is real, so routing is observed, and the TensorRT step it runs stops at the
import boundary with `tensorrt-unavailable` because no TensorRT is installed here.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.db import new_session
from service.jobs.orm import Job
from service.workers import registry
from tests.fixtures.api import Api
from tests.fixtures.infrastructure import start_worker, stop_worker

PROBLEMS = "https://modelpress.dev/problems/"
H100 = {
    "cpu_model": "Intel(R) Xeon(R) Platinum 8480+",
    "cpu_flags": ["amx_int8", "avx2", "avx512_vnni", "avx512f"],
    "cores": 16,
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "gpu_memory_bytes": 85_520_809_984,
    "compute_capability": "9.0",
    "cuda_version": "12.8",
    "torch_version": "2.13.0+cu128",
    "execution_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


@contextmanager
def described_gpu(*, tensorrt: str | None) -> Iterator[uuid.UUID]:
    """A registry row for a GPU worker this machine does not have (removed afterwards)."""
    hardware = {**H100, "tensorrt_version": tensorrt}
    with new_session() as session:
        worker_id = registry.register(
            session, hostname="described-gpu", pid=0, queues=["gpu"], hardware=hardware
        )
    try:
        yield worker_id
    finally:
        with new_session() as session:
            registry.forget(session, worker_id=worker_id)


@pytest.fixture(scope="module")
def model(tenant: Api, cnn_onnx: Path) -> dict[str, Any]:
    return tenant.wait_model(tenant.upload("models", cnn_onnx).json()["id"])


@pytest.fixture(scope="module")
def tenant(app_client: Any, worker: Any) -> Api:
    from tests.fixtures.api import new_key

    return Api(app_client, new_key())


@pytest.fixture(scope="module")
def gpu_worker(worker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Celery worker consuming only `gpu` (a CPU box: it registers with no GPU); yields its log."""
    log = tmp_path_factory.mktemp("gpu-worker") / "worker.log"
    process = start_worker(log, beat=False, concurrency=1, queues="gpu", env=dict(os.environ))
    yield log
    stop_worker(process)


def submit(tenant: Api, body: dict[str, Any]) -> Any:
    return tenant.post("/v1/jobs", json=body)


def cuda_job(model_id: str) -> dict[str, Any]:
    steps = [{"technique": "quantize.dynamic"}]
    return {"model_id": model_id, "steps": steps, "evaluation": {"device": "cuda"}}


def tensorrt_job(model_id: str) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "steps": [
            {"technique": "prune.magnitude", "params": {"sparsity": 0.5}},
            {"technique": "tensorrt.build", "params": {"precision": "fp16", "batch_sizes": [1, 8]}},
        ],
    }


def test_workers_lists_live_hardware_classes_without_hostnames(tenant: Api) -> None:
    response = tenant.get("/v1/workers")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    cpu = [item for item in items if item["pool"] == "cpu"]
    assert cpu and all(item["workers"] >= 1 for item in items)
    assert cpu[0]["gpu_name"] is None and isinstance(cpu[0]["cpu_flags"], list)
    assert socket.gethostname() not in response.text
    assert not {"hostname", "pid", "id"} & set(items[0])
    assert tenant.client.get("/v1/workers").status_code == 401


def test_gpu_steps_are_refused_with_409_when_no_gpu_worker_is_alive(
    tenant: Api, model: dict[str, Any]
) -> None:
    before = len(tenant.get("/v1/jobs").json()["items"])
    build = submit(tenant, tensorrt_job(model["id"]))
    cuda = submit(tenant, cuda_job(model["id"]))
    for response in (build, cuda):
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["type"] == PROBLEMS + "no-capable-worker" and problem["missing"] == "gpu"
        assert "no live GPU worker" in problem["detail"]
    assert len(tenant.get("/v1/jobs").json()["items"]) == before  # nothing queued


def test_tensorrt_build_must_be_the_last_step(tenant: Api, model: dict[str, Any]) -> None:
    body = tensorrt_job(model["id"])
    body["steps"].reverse()
    response = submit(tenant, body)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == PROBLEMS + "invalid-params"
    assert "must be the job's last step" in response.json()["detail"]


def test_a_gpu_worker_without_tensorrt_is_named_as_what_is_missing(
    tenant: Api, model: dict[str, Any]
) -> None:
    with described_gpu(tensorrt=None):
        response = submit(tenant, tensorrt_job(model["id"]))
    assert response.status_code == 409, response.text
    assert response.json()["missing"] == "tensorrt"
    assert "no live GPU worker has TensorRT" in response.json()["detail"]


def test_a_job_whose_gpu_worker_died_while_queued_fails_after_lease_and_sweep(
    tenant: Api, model: dict[str, Any]
) -> None:
    # The CPU step runs on the session's cpu worker; the CUDA evaluation then moves the job to `gpu`,
    # where (before this module's gpu worker starts) nobody consumes it. Then the GPU worker "dies".
    body = cuda_job(model["id"])
    with described_gpu(tensorrt=None):
        response = submit(tenant, body)
        assert response.status_code == 202, response.text
        job_id = uuid.UUID(response.json()["id"])
        _wait_queued_on_gpu(job_id)
    job = tenant.wait_job(str(job_id), timeout=120)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == PROBLEMS + "no-capable-worker"
    assert job["steps"][0]["status"] == "succeeded"  # the CPU part ran before the job was stranded
    lines = tenant.get(f"/v1/jobs/{job_id}/logs", params={"limit": 200}).json()["items"]
    assert any(line["message"] == "moving to the gpu pool" for line in lines)


def test_a_gpu_step_runs_on_the_gpu_queue_worker_and_stops_at_the_tensorrt_import(
    tenant: Api, model: dict[str, Any], gpu_worker: Path
) -> None:
    with described_gpu(tensorrt="10.13.0.35"):
        response = submit(tenant, tensorrt_job(model["id"]))
        assert response.status_code == 202, response.text
        job = tenant.wait_job(response.json()["id"], timeout=180)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == PROBLEMS + "tensorrt-unavailable", job["error"]
    assert job["error"]["step"] == 1 and job["error"]["technique"] == "tensorrt.build"
    assert job["steps"][0]["status"] == "succeeded"
    lines = tenant.get(f"/v1/jobs/{job['id']}/logs", params={"limit": 200}).json()["items"]
    attempts = [line["fields"].get("queue") for line in lines if line["message"].startswith("attempt")]
    assert attempts == ["cpu", "gpu"], lines  # step 0 on the cpu pool, step 1 handed over to gpu
    # Only this worker consumes `gpu` (the session worker takes cpu and webhooks).
    assert "modelpress.run_job" in gpu_worker.read_text()


def test_an_uploaded_tensorrt_engine_is_refused(tenant: Api, tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00\x00\x00\x00ftrt" + bytes(2048))
    response = tenant.upload("models", engine)
    assert response.status_code == 415, response.text
    assert response.json()["type"] == PROBLEMS + "unsupported-format"
    assert "TensorRT engine" in response.json()["detail"]


def _wait_queued_on_gpu(job_id: uuid.UUID, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with new_session() as session:
            job = session.scalar(select(Job).where(Job.id == job_id))
            assert job is not None
            if job.queue == "gpu" and job.status == "queued":
                return
            assert job.status in ("queued", "running"), (job.status, job.error)
        assert time.monotonic() < deadline, "the job never moved to the gpu queue"
        time.sleep(0.3)
