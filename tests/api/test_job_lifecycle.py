"""Cancelling, listing, paging, idempotent submission and deletion."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests import model_zoo
from tests.fixtures.api import Api

DYNAMIC = [{"technique": "quantize.dynamic"}]


def test_cancel_a_queued_job(api: Api, mlp_onnx: Path) -> None:
    model = api.upload("models", mlp_onnx).json()
    job = api.post("/v1/jobs", json={"model_id": model["id"], "steps": DYNAMIC}).json()

    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel")

    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    api.wait_model(model["id"])
    time.sleep(3)  # the ingest publishes waiting jobs; a cancelled one must stay cancelled
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "cancelled"
    assert after["attempts"] == 0
    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409


def test_cancel_a_running_job_stops_it(api: Api, tmp_path: Path) -> None:
    big = model_zoo.export_onnx(model_zoo.DigitsMLP(hidden=1024).eval(), tmp_path / "wide.onnx")
    model = api.wait_model(api.upload("models", big).json()["id"])
    job = api.post(
        "/v1/jobs",
        json={"model_id": model["id"], "steps": DYNAMIC, "evaluation": {"batch_sizes": [1, 8, 32, 64]}},
    ).json()
    deadline = time.monotonic() + 60
    while api.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.1)

    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    final = api.wait_job(job["id"], timeout=60)

    assert final["status"] == "cancelled", final
    assert final["comparison"] is None


def test_list_filters_and_pages(api: Api, mlp_onnx: Path) -> None:
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    ids = [
        api.post("/v1/jobs", json={"model_id": model["id"], "steps": DYNAMIC}).json()["id"] for _ in range(3)
    ]
    for job_id in ids:
        api.wait_job(job_id)

    first = api.get("/v1/jobs", params={"limit": 2}).json()
    second = api.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    succeeded = api.get("/v1/jobs", params={"status": "succeeded", "model_id": model["id"]}).json()

    assert [job["id"] for job in first["items"] + second["items"]] == list(reversed(ids))
    assert second["next_cursor"] is None
    assert len(succeeded["items"]) == 3
    assert api.get("/v1/jobs", params={"status": "failed"}).json()["items"] == []


def test_idempotency_key_replays_and_refuses_a_different_body(api: Api, mlp_onnx: Path) -> None:
    model = api.wait_model(api.upload("models", mlp_onnx).json()["id"])
    body = {"model_id": model["id"], "steps": DYNAMIC}
    headers = {"Idempotency-Key": "build-42"}

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: api.post("/v1/jobs", json=body, headers=headers), range(8)))
    different = api.post("/v1/jobs", json={**body, "evaluation": {"batch_sizes": [4]}}, headers=headers)

    assert {response.status_code for response in responses} == {202}
    assert len({response.json()["id"] for response in responses}) == 1
    assert len(api.get("/v1/jobs").json()["items"]) == 1
    assert different.status_code == 422
    assert different.json()["type"].endswith("idempotency-key-reused")


def test_deleted_model_disappears(api: Api, mlp_onnx: Path) -> None:
    model = api.upload("models", mlp_onnx).json()

    assert api.delete(f"/v1/models/{model['id']}").status_code == 204

    assert api.get(f"/v1/models/{model['id']}").status_code == 404
    assert all(item["id"] != model["id"] for item in api.get("/v1/models").json()["items"])


def test_catalog_lists_techniques_with_json_schema(api: Api) -> None:
    items = {item["name"]: item for item in api.get("/v1/techniques").json()["items"]}

    dynamic = items["quantize.dynamic"]
    assert dynamic["queue"] == "cpu"
    per_channel = dynamic["params_schema"]["properties"]["per_channel"]
    assert per_channel["default"] == "auto"
    assert {"boolean", "string"} == {option["type"] for option in per_channel["anyOf"]}
    assert dynamic["params_schema"]["additionalProperties"] is False
