"""quantize.qat through the API on a real worker: prune.structured then quantize.qat, and bad params."""

from __future__ import annotations

from typing import Any

import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from torch import nn

from tests import model_zoo
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"


@pytest.fixture(scope="module")
def tenant(app_client: TestClient, worker: Any) -> Api:
    """One tenant for the module."""
    return Api(app_client, new_key())


@pytest.fixture(scope="module")
def uploads(tenant: Api, cnn: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits CNN (ready), its labelled training split and its test split, uploaded."""
    folder = tmp_path_factory.mktemp("qat")
    return tenant.upload_splits(model_zoo.export_onnx(cnn, folder / "cnn.onnx"), folder)


def test_prune_then_qat_job_gives_an_accurate_qdq_model(tenant: Api, uploads: dict[str, Any]) -> None:
    training = {"dataset_id": uploads["train"], "epochs": 3}
    body = {
        "model_id": uploads["model"]["id"],
        "steps": [
            {
                "technique": "prune.structured",
                "params": {"sparsity": 0.5, "round_to": 1, "finetune": training},
            },
            {"technique": "quantize.qat", "params": {"training": training}},
        ],
        "evaluation": {"dataset_id": uploads["test"], "metric": "top1", "batch_sizes": [1, 8]},
    }
    submitted = tenant.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    found = tenant.wait_job(submitted.json()["id"])
    assert found["status"] == "succeeded", found
    metrics = found["steps"][1]["metrics"]
    assert metrics["training"]["objective"] == "cross_entropy+distillation"
    assert [epoch["epoch"] for epoch in metrics["training"]["epochs"]] == [1, 2, 3]
    assert metrics["quantized_ops"]["Conv"] == 2

    content = tenant.get(f"/v1/artifacts/{found['artifact_id']}/content").content
    ops = {node.op_type for node in onnx.load_from_string(content).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    images, labels = model_zoo.digits("test")
    session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    assert (session.run(None, {"x": images})[0].argmax(1) == labels).mean() > 0.8


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"training": {"dataset_id": "DATASET", "epochs": 0}},
        {"training": {"dataset_id": "DATASET"}, "learn_scales": "sometimes"},
        {"training": {"dataset_id": "DATASET"}, "per_channel": "maybe"},
    ],
)
def test_bad_qat_params_are_422_problems(
    tenant: Api, uploads: dict[str, Any], params: dict[str, Any]
) -> None:
    if "training" in params:
        params = {**params, "training": {**params["training"], "dataset_id": uploads["train"]}}
    before = tenant.get("/v1/jobs").json()["items"]
    body = {"model_id": uploads["model"]["id"], "steps": [{"technique": "quantize.qat", "params": params}]}
    response = tenant.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEMS + "invalid-params"
    assert tenant.get("/v1/jobs").json()["items"] == before


def test_a_dataset_too_small_to_split_fails_the_step_with_a_clear_problem(
    tenant: Api, uploads: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    tiny = model_zoo.write_dataset(tmp_path_factory.mktemp("tiny") / "tiny.npz", limit=5)
    dataset = tenant.upload("datasets", tiny).json()["id"]
    training = {"dataset_id": dataset, "epochs": 1, "validation_fraction": 0.2}
    body = {
        "model_id": uploads["model"]["id"],
        "steps": [{"technique": "quantize.qat", "params": {"training": training}}],
    }
    submitted = tenant.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job = tenant.wait_job(submitted.json()["id"])
    assert job["status"] == "failed", job
    assert job["error"]["type"] == PROBLEMS + "dataset-too-small"
    assert (job["error"]["step"], job["error"]["technique"]) == (0, "quantize.qat")
    assert "too few to hold out" in job["error"]["detail"]
