"""prune.magnitude with fine-tuning through the API, on a real worker: zeros kept, epochs reported."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from tests import model_zoo
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"
SPARSITY = 0.9
EPOCHS = 20  # about 0.1 s each: long enough for a progress write (1 per s) to be seen


@pytest.fixture(scope="module")
def tenant(app_client: TestClient, worker: Any) -> Api:
    """One tenant for the module, so the job below is run once and inspected by several tests."""
    return Api(app_client, new_key())


@pytest.fixture(scope="module")
def uploads(tenant: Api, mlp_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits MLP (ready), its labelled training split and its labelled test split, uploaded."""
    return tenant.upload_splits(mlp_onnx, tmp_path_factory.mktemp("prune-finetune"))


def step(technique: str, dataset_id: str, **finetune: Any) -> dict[str, Any]:
    """A pruning step fine-tuned on `dataset_id`."""
    params = {"sparsity": SPARSITY} if technique == "prune.magnitude" else {}
    return {"technique": technique, "params": {**params, "finetune": {"dataset_id": dataset_id, **finetune}}}


@pytest.fixture(scope="module")
def job(tenant: Api, uploads: dict[str, Any]) -> dict[str, Any]:
    """prune.magnitude at 90% with fine-tuning, evaluated on the test split; every stage seen."""
    body = {
        "model_id": uploads["model"]["id"],
        "steps": [step("prune.magnitude", uploads["train"], epochs=EPOCHS, learning_rate=3e-3)],
        "evaluation": {"dataset_id": uploads["test"], "metric": "top1", "batch_sizes": [1, 8]},
    }
    submitted = tenant.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    found, stages = tenant.follow_job(submitted.json()["id"], timeout=240)
    return {"job": found, "stages": stages}


def test_the_job_succeeds_with_fine_tuning_epochs_in_its_metrics(tenant: Api, job: dict[str, Any]) -> None:
    found = job["job"]
    assert found["status"] == "succeeded", found
    metrics = found["steps"][0]["metrics"]
    finetune = metrics["finetune"]
    assert finetune["objective"] == "cross_entropy+distillation"
    assert [epoch["epoch"] for epoch in finetune["epochs"]] == list(range(1, EPOCHS + 1))
    assert finetune["epochs"][-1]["loss"] < finetune["epochs"][0]["loss"]
    epochs = [stage for stage in job["stages"] if "epoch " in stage]
    assert epochs and all(f"/{EPOCHS} loss " in stage for stage in epochs), job["stages"]

    content = tenant.get(f"/v1/artifacts/{found['artifact_id']}/content")
    images, labels = model_zoo.digits("test")
    session = ort.InferenceSession(content.content, providers=["CPUExecutionProvider"])
    assert (session.run(None, {"x": images})[0].argmax(1) == labels).mean() > 0.7


def test_report_and_comparison_show_the_sparsity_of_every_layer(tenant: Api, job: dict[str, Any]) -> None:
    found = job["job"]
    reported = found["steps"][0]["metrics"]["per_layer_sparsity"]
    assert set(reported) == {"/net/net.1/Gemm", "/net/net.3/Gemm", "/net/net.5/Gemm"}
    assert all(abs(fraction - SPARSITY) < 1e-3 for fraction in reported.values())
    # The comparison measures the downloaded file itself: its layers carry the same zeros.
    measured = found["comparison"]["candidate"]["per_layer_sparsity"]
    assert sorted(measured.values()) == pytest.approx(sorted(reported.values()), abs=1e-6)
    assert "per_layer_sparsity" not in found["comparison"]["baseline"]
    report = tenant.get(f"/v1/jobs/{found['id']}/report").json()
    assert report["steps"][0]["metrics"]["per_layer_sparsity"] == reported
    assert report["comparison"]["candidate"]["per_layer_sparsity"] == measured


@pytest.mark.parametrize("technique", ["prune.magnitude", "prune.nm"])
def test_a_bad_finetune_dataset_is_refused_before_anything_runs(
    tenant: Api, uploads: dict[str, Any], app_client: TestClient, tmp_path: Path, technique: str
) -> None:
    stranger = Api(app_client, new_key())
    theirs = stranger.upload("datasets", model_zoo.write_dataset(tmp_path / "theirs.npz")).json()["id"]
    model_id = uploads["model"]["id"]
    before = tenant.get("/v1/jobs").json()["items"]

    for dataset_id in (str(uuid.uuid4()), theirs):
        response = tenant.post(
            "/v1/jobs", json={"model_id": model_id, "steps": [step(technique, dataset_id)]}
        )
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == f"dataset {dataset_id} does not exist"
    for bad in (step(technique, "not-an-id"), step(technique, uploads["train"], epochs=0)):
        response = tenant.post("/v1/jobs", json={"model_id": model_id, "steps": [bad]})
        assert response.status_code == 422, response.text
        assert response.json()["type"] == PROBLEMS + "invalid-params"

    assert tenant.get("/v1/jobs").json()["items"] == before
