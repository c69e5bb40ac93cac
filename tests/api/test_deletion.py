"""DELETE for jobs, datasets and artifacts: 204 and gone when nothing needs them, 409 while something does."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from service import quotas
from service.artifacts.service import collect_garbage
from service.db import new_session, utcnow
from service.jobs.deletion import purge_finished
from service.jobs.orm import Job, JobStatus
from service.models.orm import Model
from service.settings import get_settings
from service.storage import get_store
from service.tenants import service as tenants_service
from tests.api.test_bad_requests import assert_problem
from tests.fixtures.api import Api
from worker.sweeper import sweep


@pytest.fixture
def model(api: Api, mlp_onnx: Path) -> dict[str, Any]:
    return api.wait_model(api.upload("models", mlp_onnx).json()["id"])


@pytest.fixture
def dataset(api: Api, digits_npz: Path) -> dict[str, Any]:
    return dict(api.upload("datasets", digits_npz).json())


def finished_job(api: Api, model: dict[str, Any], dataset_id: str | None = None) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"batch_sizes": [1]}
    if dataset_id:
        evaluation["dataset_id"] = dataset_id
    body = {"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}], "evaluation": evaluation}
    job = api.wait_job(api.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture
def running_job(api: Api, model: dict[str, Any], dataset: dict[str, Any]) -> Iterator[uuid.UUID]:
    """A job held as running by a lease far in the future, so no worker or sweeper touches it."""
    job = finished_job(api, model, dataset["id"])
    job_id = uuid.UUID(job["id"])
    with new_session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.RUNNING, lease_expires_at=utcnow() + timedelta(hours=1))
        )
        session.commit()
    yield job_id
    with new_session() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(status=JobStatus.FAILED, lease_expires_at=None)
        )
        session.commit()


def test_a_finished_job_is_deleted_with_its_artifacts(api: Api, model: dict[str, Any]) -> None:
    job = finished_job(api, model)
    assert api.get(f"/v1/artifacts/{job['artifact_id']}").status_code == 200
    with new_session() as session:
        before = quotas.stored_bytes(session=session, tenant_id=_tenant(api))

    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204

    assert_problem(api.get(f"/v1/jobs/{job['id']}"), 404, "not-found")
    assert_problem(api.get(f"/v1/artifacts/{job['artifact_id']}"), 404, "not-found")
    assert all(item["id"] != job["id"] for item in api.get("/v1/jobs").json()["items"])
    assert_problem(api.delete(f"/v1/jobs/{job['id']}"), 404, "not-found")
    with new_session() as session:
        assert quotas.stored_bytes(session=session, tenant_id=_tenant(api)) < before


def test_objects_in_use_by_a_running_job_answer_409(
    api: Api, model: dict[str, Any], dataset: dict[str, Any], running_job: uuid.UUID
) -> None:
    job = api.get(f"/v1/jobs/{running_job}").json()

    for path in (f"/v1/jobs/{running_job}", f"/v1/datasets/{dataset['id']}", f"/v1/models/{model['id']}",
                 f"/v1/artifacts/{job['artifact_id']}"):  # fmt: skip
        body = assert_problem(api.delete(path), 409, "conflict")
        assert str(running_job) in body["detail"] or body.get("job_status") == "running", body

    assert api.get(f"/v1/datasets/{dataset['id']}").status_code == 200
    assert api.get(f"/v1/models/{model['id']}").status_code == 200


def test_a_dataset_is_deleted_once_no_unfinished_job_names_it(
    api: Api, model: dict[str, Any], dataset: dict[str, Any]
) -> None:
    job = finished_job(api, model, dataset["id"])

    assert api.delete(f"/v1/datasets/{dataset['id']}").status_code == 204

    assert_problem(api.get(f"/v1/datasets/{dataset['id']}"), 404, "not-found")
    assert api.get(f"/v1/jobs/{job['id']}/report").status_code == 200  # results stay


def test_a_models_file_is_refused_and_a_jobs_output_is_detached(api: Api, model: dict[str, Any]) -> None:
    job = finished_job(api, model)
    with new_session() as session:
        upload_artifact = session.get(Model, uuid.UUID(model["id"])).upload_artifact_id  # type: ignore[union-attr]

    refused = assert_problem(api.delete(f"/v1/artifacts/{upload_artifact}"), 409, "conflict")
    deleted = api.delete(f"/v1/artifacts/{job['artifact_id']}")

    assert f"model {model['id']}" in refused["detail"]
    assert deleted.status_code == 204
    assert_problem(api.get(f"/v1/artifacts/{job['artifact_id']}"), 404, "not-found")
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert after["artifact_id"] is None and after["comparison"] == job["comparison"]


def test_retention_purges_jobs_that_ended_long_ago(api: Api, model: dict[str, Any]) -> None:
    old, recent = finished_job(api, model), finished_job(api, model)
    with new_session() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(old["id"]))
            .values(finished_at=utcnow() - timedelta(days=40))
        )
        session.commit()

    counts = sweep(get_settings().model_copy(update={"job_retention_days": 30}))

    assert counts["purged"] >= 1
    assert api.get(f"/v1/jobs/{old['id']}").status_code == 404
    assert api.get(f"/v1/jobs/{recent['id']}").status_code == 200
    with new_session() as session:
        assert purge_finished(session=session, finished_before=utcnow() - timedelta(days=30)) == 0


def test_garbage_collection_deletes_only_old_unreferenced_files(api: Api, model: dict[str, Any]) -> None:
    store = get_store()
    orphan = store.put_file(_file(b"nobody refers to these bytes " + uuid.uuid4().bytes))
    fresh = store.put_file(_file(b"written a moment ago " + uuid.uuid4().bytes))
    _age(store, orphan.sha256)

    with new_session() as session:
        collect_garbage(session=session, store=store, grace_s=600)

    assert not store.exists(orphan.sha256)
    assert store.exists(fresh.sha256)
    assert store.exists(model["sha256"])  # referenced: kept however old


def _tenant(api: Api) -> uuid.UUID:
    with new_session() as session:
        return tenants_service.authenticate(session=session, key=api.headers["Authorization"].split()[1])


def _file(content: bytes) -> Path:
    path = get_settings().home / f"gc-{uuid.uuid4().hex}"
    path.write_bytes(content)
    return path


def _age(store: Any, sha256: str) -> None:
    long_ago = time.time() - 7200
    os.utime(store.path(sha256), (long_ago, long_ago))
