"""quantize.auto over HTTP with a real worker: the trial table, the chosen model, and an honest verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import model_zoo
from tests.fixtures.api import Api

FAST = {"timing_budget_s": 0.05, "max_eval_samples": 120}


@pytest.fixture
def uploaded(api: Api, mlp_onnx: Path, digits_npz: Path, tmp_path: Path) -> dict[str, str]:
    """The digits MLP (ingested) and its calibration, labelled and unlabelled evaluation datasets."""
    images, _ = model_zoo.digits("train")
    np.savez(tmp_path / "calibration.npz", x=images[:64])
    ids = {
        "calibration": api.upload("datasets", tmp_path / "calibration.npz").json()["id"],
        "labelled": api.upload("datasets", digits_npz).json()["id"],
        "unlabelled": api.upload(
            "datasets", model_zoo.write_dataset(tmp_path / "unlabelled.npz", labels=False, limit=120)
        ).json()["id"],
    }
    model = api.upload("models", mlp_onnx).json()
    assert api.wait_model(model["id"])["status"] == "ready"
    return {"model": model["id"], **ids}


def _run(
    api: Api, uploaded: dict[str, str], params: dict[str, Any], evaluation: dict[str, Any]
) -> dict[str, Any]:
    submitted = api.post(
        "/v1/jobs",
        json={
            "model_id": uploaded["model"],
            "steps": [
                {"technique": "quantize.auto", "params": {"dataset_id": uploaded["calibration"], **params}}
            ],
            "evaluation": {"dataset_id": uploaded["labelled"], "batch_sizes": [8], **evaluation},
        },
    )
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_quantize_auto_job_returns_the_chosen_candidate_with_its_trials(
    api: Api, uploaded: dict[str, str]
) -> None:
    job = _run(
        api,
        uploaded,
        {"eval_dataset_id": uploaded["labelled"], "max_accuracy_drop": 0.05, **FAST},
        {"metric": "top1", "max_accuracy_drop": 0.05},
    )
    metrics = job["steps"][0]["metrics"]
    trials = metrics["trials"]
    assert trials and metrics["within_accuracy_budget"] is True
    chosen = trials[metrics["chosen_trial"]]
    assert chosen["within_budget"] is True and chosen["excluded_nodes"] == metrics["excluded_nodes"]
    assert chosen["latency_ms"] > 0 and chosen["size_bytes"] > 0
    comparison = job["comparison"]
    # The job's artifact, and so its comparison, is the chosen trial's model.
    assert comparison["candidate"]["size_bytes"] == chosen["size_bytes"]
    assert comparison["verdict"]["within_accuracy_budget"] is True
    node_errors = comparison["node_errors"]
    assert node_errors and {"node", "op_type", "cosine", "relative_error"} <= set(node_errors[0])
    report = api.get(f"/v1/jobs/{job['id']}/report").json()
    assert report["steps"][0]["metrics"]["trials"] == trials
    assert report["comparison"]["node_errors"] == node_errors


def test_a_missed_step_budget_makes_the_job_verdict_say_so(api: Api, uploaded: dict[str, str]) -> None:
    params = {
        "eval_dataset_id": uploaded["unlabelled"], "metric": "mse", "max_accuracy_drop": 0.0, "max_trials": 2,
        **FAST,
    }  # fmt: skip
    job = _run(api, uploaded, params, {})
    metrics = job["steps"][0]["metrics"]
    assert metrics["within_accuracy_budget"] is False
    assert [row["trial"] for row in metrics["trials"]] == [0, 1]
    verdict = job["comparison"]["verdict"]
    # The job's evaluation set no budget of its own; the step's missed budget still decides.
    assert verdict["within_accuracy_budget"] is False
    assert any(w.startswith("step 0 (quantize.auto): no candidate met") for w in verdict["warnings"])


def test_catalog_serves_quantize_auto_params(api: Api) -> None:
    items = {item["name"]: item for item in api.get("/v1/techniques").json()["items"]}
    schema = items["quantize.auto"]["params_schema"]
    assert {"dataset_id", "eval_dataset_id", "max_accuracy_drop", "drop_type", "mode", "max_trials"} <= set(
        schema["properties"]
    )
    assert schema["required"] == ["dataset_id"]


def test_the_model_report_puts_every_job_and_trial_of_the_model_on_one_frontier(
    api: Api, uploaded: dict[str, str]
) -> None:
    searched = _run(
        api,
        uploaded,
        {"eval_dataset_id": uploaded["labelled"], "max_accuracy_drop": 0.05, **FAST},
        {"metric": "top1", "max_accuracy_drop": 0.05},
    )
    submitted = api.post(
        "/v1/jobs",
        json={
            "model_id": uploaded["model"],
            "steps": [{"technique": "quantize.dynamic", "params": {}}],
            "evaluation": {"dataset_id": uploaded["labelled"], "batch_sizes": [8], "metric": "top1"},
        },
    )
    dynamic = api.wait_job(submitted.json()["id"])
    assert dynamic["status"] == "succeeded", dynamic

    report = api.get(f"/v1/models/{uploaded['model']}/report").json()

    points = {point["job_id"]: point for point in report["jobs"]}
    assert set(points) == {searched["id"], dynamic["id"]}
    for job in (searched, dynamic):
        point, comparison = points[job["id"]], job["comparison"]
        assert point["batch"] == "8"
        assert point["latency_ms"] == comparison["candidate"]["latency_ms"]["8"]["p50"]
        assert point["loss"] == comparison["delta"]["accuracy_drop"]
        assert point["size_bytes"] == comparison["candidate"]["size_bytes"]
    trials = searched["steps"][0]["metrics"]["trials"]
    assert len(report["trials"]) == len(trials)
    assert {trial["job_id"] for trial in report["trials"]} == {searched["id"]}
    assert [trial["latency_ms"] for trial in report["trials"]] == [trial["latency_ms"] for trial in trials]
    assert [trial["chosen"] for trial in report["trials"]].count(True) == 1
    # A job is on the frontier unless the other is at least as good on latency, loss and size.
    a, b = points[searched["id"]], points[dynamic["id"]]
    keys = ("latency_ms", "loss", "size_bytes")
    a_beaten = all(b[k] <= a[k] for k in keys) and any(b[k] < a[k] for k in keys)
    b_beaten = all(a[k] <= b[k] for k in keys) and any(a[k] < b[k] for k in keys)
    assert (searched["id"] in report["frontier"]) is not a_beaten
    assert (dynamic["id"] in report["frontier"]) is not b_beaten
    assert report["recommendation"].startswith("Of 2 measured jobs, the best trade-off is job ")

    page = api.get(f"/v1/models/{uploaded['model']}/report", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-chart="pareto"' in page.text and report["recommendation"].split(".")[0] in page.text
    missing = api.get("/v1/models/00000000-0000-0000-0000-000000000000/report")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")
