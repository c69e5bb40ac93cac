"""GET /v1/jobs/{id}/events: Server-Sent Events from the job's document to its end, read as a client would."""

from __future__ import annotations

import json
from typing import Any

import httpx

from modelpress import Client
from service.jobs.events import changes
from tests.client.conftest import LiveServer


def test_events_follow_a_job_from_queued_to_its_end(
    live_server: LiveServer, tenant_key: str, ready_model: dict[str, Any], digits_dataset: dict[str, Any]
) -> None:
    body = {
        "model_id": ready_model["id"],
        "steps": [
            {"technique": "prune.magnitude", "params": {"sparsity": 0.5}},
            {"technique": "quantize.dynamic"},
        ],
        "evaluation": {"dataset_id": digits_dataset["id"], "metric": "top1", "batch_sizes": [1]},
    }
    with Client(live_server.url, tenant_key) as client:
        job = client.create_job(body)
        events = [(event.name, event.data) for event in client.events(job.id)]
        final = client.get_job(job.id).raw

    names = [name for name, _ in events]
    assert names[0] == "job" and names[-1] == "end"
    assert "progress" in names
    finished_steps = [
        data["index"] for name, data in events if name == "step" and data["status"] == "succeeded"
    ]
    assert finished_steps == [0, 1]
    assert events[-1][1] == final and final["status"] == "succeeded"
    progress = [data["progress"] for name, data in events if name == "progress"]
    assert progress == sorted(progress)


def test_a_finished_job_streams_its_document_and_end_at_once(
    live_server: LiveServer, tenant_key: str, finished_job: dict[str, Any]
) -> None:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {tenant_key}"}) as http:
        response = http.get(f"/v1/jobs/{finished_job['id']}/events", timeout=30)

    assert response.headers["content-type"].startswith("text/event-stream")
    lines = response.text.splitlines()
    assert [line for line in lines if line.startswith("event: ")] == ["event: job", "event: end"]
    assert json.loads(lines[2][len("data: ") :])["id"] == finished_job["id"]


def test_an_unknown_job_is_a_404_problem_not_a_stream(live_server: LiveServer, tenant_key: str) -> None:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {tenant_key}"}) as http:
        response = http.get("/v1/jobs/00000000-0000-4000-8000-000000000000/events", timeout=30)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_changes_name_only_what_changed() -> None:
    step = {
        "index": 0,
        "status": "running",
        "metrics": None,
        "warnings": None,
        "error": None,
        "artifact_id": None,
    }
    before = {"status": "running", "stage": "step 1", "progress": 0.1, "steps": [step]}
    same = changes(before, before)
    after = {**before, "progress": 0.5, "steps": [{**step, "status": "succeeded"}]}

    assert same == []
    assert [name for name, _ in changes(before, after)] == ["progress", "step"]
    assert [name for name, _ in changes(None, {**after, "status": "failed"})] == ["job", "end"]
