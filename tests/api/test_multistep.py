"""Multi-step jobs on a real worker: prune.structured with fine-tuning, then quantize.static."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from torch import nn

from tests import model_zoo
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"
EPOCHS = 30  # 0.1-0.2 s each: fine-tuning lasts long enough for progress writes (1 per s) to be seen


@pytest.fixture(scope="module")
def tenant(app_client: TestClient, worker: Any) -> Api:
    """One tenant for the module, so the pipeline job below is run once and inspected by many tests."""
    return Api(app_client, new_key())


@pytest.fixture(scope="module")
def uploads(tenant: Api, cnn: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits CNN (ready), its labelled training split and its labelled test split, uploaded."""
    folder = tmp_path_factory.mktemp("multistep")
    return tenant.upload_splits(model_zoo.export_onnx(cnn, folder / "cnn.onnx"), folder)


def structured(train_id: str, epochs: int = EPOCHS) -> dict[str, Any]:
    """prune.structured at 50% with fine-tuning on the labelled training split."""
    finetune = {"dataset_id": train_id, "epochs": epochs, "learning_rate": 3e-3}
    return {"technique": "prune.structured", "params": {"sparsity": 0.5, "finetune": finetune}}


@pytest.fixture(scope="module")
def failing_job(tenant: Api, uploads: dict[str, Any]) -> str:
    """A job whose second step cannot run, submitted early so that it runs beside the pipeline job."""
    # After 50% structured pruning the convolutions have 1 and 8 input channels: no 16-wide group fits.
    body = {
        "model_id": uploads["model"]["id"],
        "steps": [
            {"technique": "prune.structured", "params": {"sparsity": 0.5}},
            {"technique": "prune.nm", "params": {"n": 2, "m": 16, "op_types": ["Conv"]}},
        ],
    }
    submitted = tenant.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["id"])


@pytest.fixture(scope="module")
def pipeline(tenant: Api, uploads: dict[str, Any], failing_job: str) -> dict[str, Any]:
    """prune.structured -> quantize.static as one job, polled closely; the job and every stage seen."""
    body = {
        "model_id": uploads["model"]["id"],
        "steps": [
            structured(uploads["train"]),
            {"technique": "quantize.static", "params": {"dataset_id": uploads["train"]}},
        ],
        "evaluation": {"dataset_id": uploads["test"], "metric": "top1", "batch_sizes": [1, 8]},
    }
    submitted = tenant.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job, stages = tenant.follow_job(submitted.json()["id"], timeout=240)
    return {"job": job, "stages": stages}


def load(tenant: Api, artifact_id: str) -> ort.InferenceSession:
    """Download an artifact and open it in onnxruntime."""
    content = tenant.get(f"/v1/artifacts/{artifact_id}/content")
    assert content.status_code == 200, content.text
    return ort.InferenceSession(content.content, providers=["CPUExecutionProvider"])


def test_prune_then_quantize_succeeds_with_two_loadable_artifacts(
    tenant: Api, pipeline: dict[str, Any]
) -> None:
    job = pipeline["job"]
    assert job["status"] == "succeeded", job
    assert [step["technique"] for step in job["steps"]] == ["prune.structured", "quantize.static"]
    assert [step["status"] for step in job["steps"]] == ["succeeded", "succeeded"]
    pruned_id, final_id = (step["artifact_id"] for step in job["steps"])
    assert pruned_id != final_id and job["artifact_id"] == final_id

    images, labels = model_zoo.digits("test")
    for artifact_id in (pruned_id, final_id):
        logits = load(tenant, artifact_id).run(None, {"x": images})[0]
        assert logits.shape == (len(images), 10)
        assert (logits.argmax(1) == labels).mean() > 0.85


def test_pruning_metrics_show_channels_parameters_and_fine_tuning(pipeline: dict[str, Any]) -> None:
    metrics = pipeline["job"]["steps"][0]["metrics"]

    channels = metrics["channels"]
    assert channels["/stem/stem.0/Conv"] == {"before": 16, "after": 8}
    assert channels["/block/block.0/Conv"] == {"before": 16, "after": 8}
    assert channels["/head/head.2/Gemm"] == {"before": 10, "after": 10}  # the output layer is protected
    assert metrics["parameters_after"] < 0.5 * metrics["parameters_before"]
    finetune = metrics["finetune"]
    assert finetune["objective"] == "cross_entropy+distillation"
    assert finetune["samples"] + finetune["held_out"] == len(model_zoo.digits("train")[0])
    losses = [epoch["loss"] for epoch in finetune["epochs"]]
    assert [epoch["epoch"] for epoch in finetune["epochs"]] == list(range(1, EPOCHS + 1))
    assert losses[-1] < losses[0]


def test_pruning_metrics_show_accuracy_before_and_after_recovery_per_epoch(pipeline: dict[str, Any]) -> None:
    """The held-out split's top-1 right after pruning, after every fine-tuning epoch, and at the end."""
    metrics = pipeline["job"]["steps"][0]["metrics"]
    recovery, finetune = metrics["recovery"], metrics["finetune"]
    assert recovery["stages"][0]["renormalized"] == 2  # the stem and block convolutions, folded norms back
    scores = [epoch["validation"]["top1"] for epoch in finetune["epochs"]]
    assert len(scores) == EPOCHS and all(epoch["validation"]["loss"] > 0 for epoch in finetune["epochs"])
    assert recovery["after_pruning"]["top1"] < recovery["after_recovery"]["top1"] == max(scores)
    assert finetune["epochs"][finetune["best_epoch"] - 1]["validation"]["top1"] == max(scores)
    assert recovery["after_recovery"]["top1"] >= recovery["original"]["top1"] - 0.05
    assert any(" top1 " in stage for stage in pipeline["stages"]), pipeline["stages"]


def test_recovery_options_that_need_data_are_refused_without_it(tenant: Api, uploads: dict[str, Any]) -> None:
    model_id = uploads["model"]["id"]
    tuning = {"dataset_id": uploads["train"]}
    for params in (
        {"importance": "taylor"},
        {"iterations": 2},
        {"iterations": 4, "finetune": {**tuning, "epochs": 3}},
        {"finetune": {**tuning, "validation_fraction": 0, "patience": 2}},
        {"finetune": {**tuning, "time_budget_s": 0}},
    ):
        step = {"technique": "prune.structured", "params": {"sparsity": 0.5, **params}}
        response = tenant.post("/v1/jobs", json={"model_id": model_id, "steps": [step]})
        assert response.status_code == 422, (params, response.text)
        assert response.json()["type"] == PROBLEMS + "invalid-params"


def test_comparison_is_the_original_against_the_final_model(
    tenant: Api, uploads: dict[str, Any], pipeline: dict[str, Any]
) -> None:
    job = pipeline["job"]
    comparison = job["comparison"]
    baseline, candidate = comparison["baseline"], comparison["candidate"]
    metrics = job["steps"][0]["metrics"]
    final = tenant.get(f"/v1/artifacts/{job['artifact_id']}").json()
    pruned = tenant.get(f"/v1/artifacts/{job['steps'][0]['artifact_id']}").json()

    assert baseline["parameters"] == uploads["model"]["parameters"] == metrics["parameters_before"]
    assert candidate["parameters"] == metrics["parameters_after"]  # int8 weights counted once each
    assert candidate["size_bytes"] == final["size_bytes"] != pruned["size_bytes"]
    assert candidate["size_bytes"] < baseline["size_bytes"]
    assert candidate["compressed_size_bytes"] < baseline["compressed_size_bytes"]
    assert comparison["verdict"]["smaller"] is True
    assert comparison["delta"]["accuracy_drop"] < 0.05
    report = tenant.get(f"/v1/jobs/{job['id']}/report").json()
    assert [step["metrics"] for step in report["steps"]] == [step["metrics"] for step in job["steps"]]


def test_progress_shows_each_fine_tuning_epoch_while_it_runs(pipeline: dict[str, Any]) -> None:
    epochs = [stage for stage in pipeline["stages"] if "epoch " in stage]

    assert epochs, pipeline["stages"]
    assert all(stage.startswith("step 1/2: prune.structured: epoch ") for stage in epochs)
    assert all(f"/{EPOCHS} loss " in stage for stage in epochs)
    assert any(stage.startswith("step 2/2: quantize.static") for stage in pipeline["stages"])


def test_a_failing_second_step_fails_the_job_and_keeps_the_first_artifact(
    tenant: Api, failing_job: str
) -> None:
    job = tenant.wait_job(failing_job)

    assert job["status"] == "failed", job
    error = job["error"]
    assert error["type"] == PROBLEMS + "nothing-to-prune"
    assert (error["step"], error["technique"]) == (1, "prune.nm")
    assert error["detail"].startswith("step 1 (prune.nm) failed: ")
    first, second = job["steps"]
    assert (first["status"], second["status"]) == ("succeeded", "failed")
    assert second["artifact_id"] is None and second["error"]["type"] == error["type"]
    assert job["comparison"] is None
    logits = load(tenant, first["artifact_id"]).run(None, {"x": model_zoo.digits("test")[0]})[0]
    assert logits.shape == (360, 10)


def test_a_finetune_dataset_must_exist_and_belong_to_the_tenant(
    tenant: Api, uploads: dict[str, Any], app_client: TestClient, tmp_path: Path
) -> None:
    stranger = Api(app_client, new_key())
    theirs = stranger.upload("datasets", model_zoo.write_dataset(tmp_path / "theirs.npz")).json()["id"]
    before = tenant.get("/v1/jobs").json()["items"]

    for dataset_id in (str(uuid.uuid4()), theirs):
        steps = [structured(dataset_id, epochs=1)]
        response = tenant.post("/v1/jobs", json={"model_id": uploads["model"]["id"], "steps": steps})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == f"dataset {dataset_id} does not exist"
    malformed = tenant.post(
        "/v1/jobs", json={"model_id": uploads["model"]["id"], "steps": [structured("not-an-id", epochs=1)]}
    )

    assert malformed.status_code == 422, malformed.text
    assert malformed.json()["type"] == PROBLEMS + "invalid-params"
    assert tenant.get("/v1/jobs").json()["items"] == before


def test_the_comparison_measures_what_each_step_added(tenant: Api, pipeline: dict[str, Any]) -> None:
    """Per-step attribution: both steps' outputs measured alike, the last one being the final model."""
    job = pipeline["job"]
    comparison = job["comparison"]
    pruned, quantized = comparison["per_step"]
    assert [pruned["index"], quantized["index"]] == [0, 1]
    assert (pruned["technique"], quantized["technique"]) == ("prune.structured", "quantize.static")
    stored = [tenant.get(f"/v1/artifacts/{step['artifact_id']}").json() for step in job["steps"]]
    assert [pruned["size_bytes"], quantized["size_bytes"]] == [artifact["size_bytes"] for artifact in stored]
    assert pruned["added"]["size_ratio"] == pytest.approx(
        pruned["size_bytes"] / comparison["baseline"]["size_bytes"]
    )
    assert quantized["added"]["size_ratio"] == pytest.approx(quantized["size_bytes"] / pruned["size_bytes"])
    assert quantized["accuracy"]["top1"] == pytest.approx(comparison["candidate"]["accuracy"]["top1"])
    drops = pruned["added"]["accuracy_drop"] + quantized["added"]["accuracy_drop"]
    assert drops == pytest.approx(comparison["delta"]["accuracy_drop"])
    assert set(pruned["added"]["speedup"]) == set(quantized["latency_ms"]) == {"1", "8"}
    assert comparison["profile"]["batch"] == "8"
    assert comparison["profile"]["candidate"]["total_ms"] > 0
