"""GET /v1/jobs/{id}/logs: the lines the worker recorded, paged oldest first, for the job's tenant only."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from engine.errortext import log_text
from service.db import new_session, utcnow
from service.jobs.orm import Job, JobStatus
from tests.api.test_bad_requests import assert_problem
from tests.fixtures.api import Api

# Two or more path components after a slash not preceded by a word character ("step 1/2" is no path).
PATH = re.compile(r"(?<![\w.])(?:/[\w.-]+){2,}")


@pytest.fixture
def model(api: Api, mlp_onnx: Path) -> dict[str, Any]:
    return api.wait_model(api.upload("models", mlp_onnx).json()["id"])


def run_job(
    api: Api, model: dict[str, Any], steps: list[dict[str, Any]], **evaluation: Any
) -> dict[str, Any]:
    body = {"model_id": model["id"], "steps": steps, "evaluation": {"batch_sizes": [1], **evaluation}}
    return api.wait_job(api.post("/v1/jobs", json=body).json()["id"])


def read_all(api: Api, job_id: str, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every line by following next_cursor, and how many pages that took."""
    lines: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = api.get(f"/v1/jobs/{job_id}/logs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= limit
        lines += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return lines, pages
        assert pages < 100, "next_cursor never ran out"


def test_a_finished_job_logs_each_step_and_the_evaluation_in_pages(
    api: Api, model: dict[str, Any], digits_npz: Path
) -> None:
    dataset = api.upload("datasets", digits_npz).json()
    steps = [
        {"technique": "prune.magnitude", "params": {"sparsity": 0.5}},
        {"technique": "quantize.dynamic"},
    ]
    job = run_job(api, model, steps, dataset_id=dataset["id"], metric="top1")
    assert job["status"] == "succeeded", job

    lines, pages = read_all(api, job["id"], limit=3)
    whole = api.get(f"/v1/jobs/{job['id']}/logs", params={"limit": 200}).json()
    second_step, _ = read_all(api, job["id"], limit=2, step=1)

    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert whole == {"items": lines, "next_cursor": None}
    assert pages == -(-len(lines) // 3)  # a full last page ends the log too: no empty page after it
    assert {line["level"] for line in lines} <= {"info", "warning"}
    assert lines[0]["message"] == "attempt 1 started" and lines[0]["step"] is None
    assert (
        lines[-1]["message"] == "job succeeded" and lines[-1]["fields"]["artifact_id"] == job["artifact_id"]
    )
    for index, step in enumerate(steps):
        own = [line for line in lines if line["step"] == index]
        assert own[0]["message"] == f"{step['technique']} started"
        finished = next(line for line in own if line["message"] == f"{step['technique']} finished")
        assert finished["fields"]["seconds"] > 0 and finished["fields"]["size_bytes"] > 0
    assert any(line["message"] == "quantizing" for line in second_step)  # the technique's own progress
    assert second_step == [line for line in lines if line["step"] == 1]
    result = next(line for line in lines if line["message"] == "evaluation finished")
    assert result["fields"]["size_ratio"] == job["comparison"]["delta"]["size_ratio"]
    times = [line["time"] for line in lines]
    assert times == sorted(times)
    assert not [line["message"] for line in lines if PATH.search(line["message"])]


def test_a_failed_step_logs_its_problem_without_paths(api: Api, model: dict[str, Any]) -> None:
    job = run_job(api, model, [{"technique": "quantize.dynamic", "params": {"op_types": ["Bogus"]}}])
    assert job["status"] == "failed", job

    lines, _ = read_all(api, job["id"], limit=50)
    errors = [line for line in lines if line["level"] == "error"]

    assert [line["step"] for line in errors] == [0, None]
    assert errors[0]["fields"]["problem"] == job["error"]["type"].rsplit("/", 1)[-1]
    assert "Bogus" in errors[0]["message"]
    assert errors[1]["message"].startswith("job failed: ") and lines[-1] == errors[1]
    assert not [line["message"] for line in lines if PATH.search(line["message"])]


@pytest.fixture
def running_job(api: Api, model: dict[str, Any]) -> Iterator[str]:
    """A finished job put back to running under a lease far in the future (no worker touches it)."""
    job = run_job(api, model, [{"technique": "quantize.dynamic"}])
    with new_session() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job["id"]))
            .values(status=JobStatus.RUNNING, lease_expires_at=utcnow() + timedelta(hours=1))
        )
        session.commit()
    yield job["id"]
    with new_session() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job["id"]))
            .values(status=JobStatus.FAILED, lease_expires_at=None)
        )
        session.commit()


def test_a_running_job_keeps_a_cursor_to_read_its_later_lines_from(api: Api, running_job: str) -> None:
    first = api.get(f"/v1/jobs/{running_job}/logs", params={"limit": 200}).json()
    caught_up = api.get(f"/v1/jobs/{running_job}/logs", params={"cursor": first["next_cursor"]}).json()

    assert first["items"] and first["next_cursor"] is not None
    assert caught_up == {"items": [], "next_cursor": first["next_cursor"]}


def test_unknown_and_other_tenants_jobs_are_404(api: Api, other_api: Api, model: dict[str, Any]) -> None:
    job = run_job(api, model, [{"technique": "quantize.dynamic"}])

    assert_problem(api.get(f"/v1/jobs/{uuid.uuid4()}/logs"), 404, "not-found")
    assert_problem(other_api.get(f"/v1/jobs/{job['id']}/logs"), 404, "not-found")


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_a_bad_cursor_is_a_problem_document(api: Api, model: dict[str, Any]) -> None:
    job = run_job(api, model, [{"technique": "quantize.dynamic"}])
    cursors = [
        "not-a-cursor",
        encoded(["2026-01-01T00:00:00", str(uuid.uuid4())]),  # a cursor of GET /v1/jobs, not of logs
        encoded({"after": "3"}),
        encoded({"after": -7}),
        encoded({"after": True}),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
    ]

    for cursor in cursors:
        response = api.get(f"/v1/jobs/{job['id']}/logs", params={"cursor": cursor})
        assert "cursor" in assert_problem(response, 422, "validation-error")["detail"], cursor


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 201}, {"step": -1}])
def test_bad_paging_values_are_refused(api: Api, query: dict[str, int]) -> None:
    assert_problem(api.get(f"/v1/jobs/{uuid.uuid4()}/logs", params=query), 422, "validation-error")


def test_log_text_drops_paths_and_control_characters() -> None:
    text = log_text("could not open /srv/modelpress/scratch/job-1/model.onnx:\n\tbad\x00 header " + "x" * 900)

    assert "/srv" not in text and "<path>" in text
    assert "\n" not in text and "\x00" not in text and len(text) == 500
