"""Models written by jobs count toward the tenant's storage quota; a step past it fails.

The same two-step job runs twice: once on the session's worker (default quota) to learn each
step's artifact size, then for a second tenant on a worker whose quota leaves room for the first
step's model and half of the second's.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import quotas
from service.artifacts.orm import Artifact
from service.db import new_session
from service.tenants import service as tenants_service
from tests.chaos.live import drop_tenant, other_workers_paused
from tests.fixtures.api import Api, new_key
from tests.fixtures.infrastructure import start_worker, stop_worker

PROBLEMS = "https://modelpress.dev/problems/"
STEPS = [
    {"technique": "prune.structured", "params": {"sparsity": 0.5}},
    {"technique": "quantize.dynamic"},
]


def _step_sizes(job_id: str) -> list[int]:
    with new_session() as session:
        artifacts = session.scalars(select(Artifact).where(Artifact.job_id == uuid.UUID(job_id))).all()
    return [artifact.size_bytes for artifact in sorted(artifacts, key=lambda artifact: artifact.filename)]


def _stored(key: str) -> int:
    with new_session() as session:
        return quotas.stored_bytes(
            session=session, tenant_id=tenants_service.authenticate(session=session, key=key)
        )


def _run(api: Api, mlp_onnx: Path) -> dict[str, Any]:
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    submitted = api.post("/v1/jobs", json={"model_id": model["id"], "steps": STEPS})
    assert submitted.status_code == 202, submitted.text
    return api.wait_job(submitted.json()["id"])


def test_a_step_past_the_storage_quota_fails_and_earlier_artifacts_stay(
    app_client: TestClient, worker: Any, mlp_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measuring, limited = new_key(), new_key()
    try:
        reference = _run(Api(app_client, measuring), mlp_onnx)
        assert reference["status"] == "succeeded", reference["error"]
        first, second = _step_sizes(reference["id"])

        api = Api(app_client, limited)
        model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
        before = _stored(limited)
        quota = before + first + second // 2
        monkeypatch.setenv("MODELPRESS_QUOTA_STORAGE_BYTES", str(quota))
        with other_workers_paused():
            own = start_worker(tmp_path / "quota-worker.log", beat=False, concurrency=1)
            try:
                submitted = api.post("/v1/jobs", json={"model_id": model["id"], "steps": STEPS})
                assert submitted.status_code == 202, submitted.text
                job = api.wait_job(submitted.json()["id"])
                stored_after = _step_sizes(job["id"])
            finally:
                stop_worker(own)
    finally:
        for key in (measuring, limited):
            drop_tenant(key)

    assert job["status"] == "failed"
    error = job["error"]
    assert error["type"] == PROBLEMS + "quota-exceeded", error
    assert (error["step"], error["technique"]) == (1, "quantize.dynamic")
    assert (error["quota_bytes"], error["used_bytes"], error["artifact_bytes"]) == (
        quota,
        before + first,
        second,
    )
    assert "/" not in error["detail"]  # no server paths
    kept, refused = job["steps"]
    assert kept["status"] == "succeeded" and kept["artifact_id"] is not None
    assert refused["status"] == "failed" and refused["artifact_id"] is None
    assert refused["error"]["type"] == PROBLEMS + "quota-exceeded"
    assert stored_after == [first]
