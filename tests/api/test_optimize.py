"""optimize over HTTP with a real worker: a short search, its trial table and frontier, presets, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.api import Api

FAST = {"timing_budget_s": 0.05, "max_eval_samples": 200, "prune_ratios": [0.5], "finetune_epochs": 1}


@pytest.fixture
def uploaded(api: Api, mlp_onnx: Path, digits_npz: Path) -> dict[str, str]:
    """The digits MLP (ingested) and the labelled digits dataset."""
    model = api.upload("models", mlp_onnx).json()
    assert api.wait_model(model["id"])["status"] == "ready"
    return {"model": model["id"], "digits": api.upload("datasets", digits_npz).json()["id"]}


def _submit(api: Api, uploaded: dict[str, str], params: dict[str, Any]) -> Any:
    return api.post(
        "/v1/jobs",
        json={
            "model_id": uploaded["model"],
            "steps": [{"technique": "optimize", "params": {"dataset_id": uploaded["digits"], **params}}],
            "evaluation": {"dataset_id": uploaded["digits"], "batch_sizes": [1], "metric": "top1"},
        },
    )


def test_an_optimize_job_returns_its_best_candidate_with_the_trial_table(
    api: Api, uploaded: dict[str, str]
) -> None:
    submitted = _submit(api, uploaded, {"preset": "cpu-latency", "time_budget_s": 60, **FAST})
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    metrics = job["steps"][0]["metrics"]
    trials = metrics["trials"]
    assert metrics["objective"] == "latency" and metrics["batch_size"] == 1
    assert len(trials) > 2 and {row["status"] for row in trials} <= {"ok", "failed", "skipped"}
    assert set(metrics["frontier"]) <= {row["id"] for row in trials if row["status"] == "ok"}
    best = trials[metrics["best"]]
    assert best["status"] == "ok" and (best["id"] == 0 or best["speedup"] >= 1.0)
    # The job's artifact, and so its comparison, is the best candidate's model.
    assert job["comparison"]["candidate"]["size_bytes"] == best["size_bytes"]
    report = api.get(f"/v1/jobs/{job['id']}/report").json()
    assert report["steps"][0]["metrics"]["trials"] == trials


@pytest.mark.parametrize(
    "params",
    [
        {"preset": "fastest"},
        {"time_budget_s": 0},
        {"techniques": ["prune.magnitude"]},
        {"objective": "energy"},
        {"prune_ratios": [1.5]},
    ],
)
def test_bad_optimize_params_are_a_422_problem(
    api: Api, uploaded: dict[str, str], params: dict[str, Any]
) -> None:
    response = _submit(api, uploaded, params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_catalog_serves_the_presets_and_their_expansions(api: Api) -> None:
    items = {item["name"]: item for item in api.get("/v1/techniques").json()["items"]}
    schema = items["optimize"]["params_schema"]
    assert set(schema["presets"]) == {"cpu-latency", "smallest", "gpu-throughput"}
    assert schema["presets"]["smallest"]["objective"] == "size"
    assert {"objective", "time_budget_s", "techniques", "max_accuracy_drop"} <= set(schema["properties"])


def test_the_accuracy_budget_comes_from_the_jobs_evaluation_unless_the_params_set_it(
    api: Api, uploaded: dict[str, str]
) -> None:
    job = api.post(
        "/v1/jobs",
        json={
            "model_id": uploaded["model"],
            "steps": [
                {"technique": "optimize", "params": {"dataset_id": uploaded["digits"], "time_budget_s": 1}}
            ],
            "evaluation": {"dataset_id": uploaded["digits"], "metric": "top1", "max_accuracy_drop": 0.02},
        },
    )
    assert job.status_code == 202, job.text
    params = job.json()["steps"][0]["params"]
    assert (params["eval_dataset_id"], params["metric"], params["max_accuracy_drop"]) == (
        uploaded["digits"],
        "top1",
        0.02,
    )
    api.wait_job(job.json()["id"])


def test_optimize_beside_another_step_is_a_422(api: Api, uploaded: dict[str, str]) -> None:
    response = api.post(
        "/v1/jobs",
        json={
            "model_id": uploaded["model"],
            "steps": [
                {"technique": "prune.structured", "params": {}},
                {"technique": "optimize", "params": {"dataset_id": uploaded["digits"]}},
            ],
        },
    )
    assert response.status_code == 422 and "only step" in response.json()["detail"]
