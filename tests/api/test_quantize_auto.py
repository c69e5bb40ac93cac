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
