"""distill through the API on a real worker: uploaded and derived students, label-free, a chain
prune.structured -> distill -> quantize.static, and the bad requests refused at submission."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from tests import model_zoo
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"


@pytest.fixture(scope="module")
def tenant(app_client: TestClient, worker: Any) -> Api:
    """One tenant for the module."""
    return Api(app_client, new_key())


@pytest.fixture(scope="module")
def uploads(tenant: Api, cnn_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits CNN (teacher), a small MLP (student), a 5-class model, and the digits data, uploaded."""
    folder = tmp_path_factory.mktemp("distill-api")
    torch.manual_seed(1)
    student = model_zoo.export_onnx(model_zoo.DigitsMLP(hidden=16).eval(), folder / "student.onnx")
    five = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5)).eval()
    other = model_zoo.export_onnx(five, folder / "five.onnx")
    images, labels = model_zoo.digits("train")
    np.savez(folder / "train.npz", x=images, labels=labels)
    np.savez(folder / "inputs.npz", x=images)
    np.savez(folder / "tiny.npz", x=images[:5], labels=labels[:5])
    ids = {
        name: tenant.upload("models", path).json()["id"]
        for name, path in (("teacher", cnn_onnx), ("student", student), ("five", other))
    }
    for model_id in ids.values():
        assert tenant.wait_model(model_id)["status"] == "ready"
    for name in ("train", "inputs", "tiny"):
        ids[name] = tenant.upload("datasets", folder / f"{name}.npz").json()["id"]
    ids["test"] = tenant.upload("datasets", model_zoo.write_dataset(folder / "test.npz")).json()["id"]
    return ids


def submit(tenant: Api, uploads: dict[str, Any], steps: list[dict[str, Any]]) -> Any:
    """A job on the teacher evaluated on the labelled test split."""
    body = {
        "model_id": uploads["teacher"],
        "steps": steps,
        "evaluation": {"dataset_id": uploads["test"], "metric": "top1", "batch_sizes": [1]},
    }
    return tenant.post("/v1/jobs", json=body)


def finished(tenant: Api, response: Any) -> tuple[dict[str, Any], list[str]]:
    """Wait for the job; returns it and every stage seen on the way."""
    assert response.status_code == 202, response.text
    return tenant.follow_job(response.json()["id"], timeout=300)


def test_an_uploaded_student_learns_without_labels(tenant: Api, uploads: dict[str, Any]) -> None:
    params = {
        "dataset_id": uploads["inputs"],
        "student_model_id": uploads["student"],
        "epochs": 40,
        "learning_rate": 1e-2,
        "temperature": 4,
        "response_loss": "kl",
    }
    job, stages = finished(tenant, submit(tenant, uploads, [{"technique": "distill", "params": params}]))

    assert job["status"] == "succeeded", job
    metrics = job["steps"][0]["metrics"]
    assert metrics["student"] == "uploaded" and metrics["distill"]["objective"] == "distillation_kl"
    assert any("epoch " in stage and "/40 loss" in stage for stage in stages), stages
    drop = job["comparison"]["delta"]["accuracy_drop"]
    assert drop < 0.05, job["comparison"]  # the 16-unit MLP, never shown a label, within 5 points of the CNN


def test_a_derived_student_learns_with_labels(tenant: Api, uploads: dict[str, Any]) -> None:
    params = {
        "dataset_id": uploads["train"],
        "student": {"sparsity": 0.5},
        "epochs": 5,
        "learning_rate": 3e-3,
    }
    job, _ = finished(tenant, submit(tenant, uploads, [{"technique": "distill", "params": params}]))

    assert job["status"] == "succeeded", job
    metrics = job["steps"][0]["metrics"]
    assert metrics["student"] == "derived" and metrics["parameters_after"] < metrics["parameters_teacher"]
    assert metrics["distill"]["objective"] == "cross_entropy+distillation_kl"
    assert job["comparison"]["delta"]["accuracy_drop"] < 0.05, job["comparison"]


def test_prune_then_distill_then_quantize(tenant: Api, uploads: dict[str, Any]) -> None:
    steps = [
        {"technique": "prune.structured", "params": {"sparsity": 0.75, "round_to": 1}},
        {
            "technique": "distill",
            "params": {"dataset_id": uploads["train"], "epochs": 4, "learning_rate": 3e-3},
        },
        {"technique": "quantize.static", "params": {"dataset_id": uploads["inputs"]}},
    ]
    job, _ = finished(tenant, submit(tenant, uploads, steps))

    assert job["status"] == "succeeded", job
    distilled = job["steps"][1]["metrics"]
    assert distilled["student"] == "previous_step"
    # The teacher is the job's model, not the pruned step input: it scores like the original.
    assert distilled["distill"]["teacher"]["top1"] > 0.9
    assert distilled["distill"]["after"]["top1"] > distilled["distill"]["before"]["top1"] + 0.1


@pytest.mark.parametrize(
    ("params", "status", "slug"),
    [
        ({}, 422, "invalid-params"),  # the job's model would teach itself
        ({"student_model_id": "five"}, 422, "incompatible-student"),
        ({"student_model_id": str(uuid.uuid4())}, 404, "not-found"),
        ({"student": {"sparsity": 0.5}, "dataset_id": "tiny"}, 422, "dataset-too-small"),
    ],
)
def test_bad_students_and_datasets_are_refused_at_submission(
    tenant: Api, uploads: dict[str, Any], params: dict[str, Any], status: int, slug: str
) -> None:
    resolved = {
        key: uploads.get(value, value) if isinstance(value, str) else value for key, value in params.items()
    }
    body = {"dataset_id": uploads["train"], **resolved}
    response = submit(tenant, uploads, [{"technique": "distill", "params": body}])

    assert response.status_code == status, response.text
    assert response.json()["type"] == PROBLEMS + slug


def test_a_bad_feature_name_fails_the_step_with_its_problem(tenant: Api, uploads: dict[str, Any]) -> None:
    params = {
        "dataset_id": uploads["train"],
        "student": {"sparsity": 0.5},
        "epochs": 1,
        "features": [{"teacher": "no_such_tensor", "student": "/Relu_output_0"}],
    }
    job, _ = finished(tenant, submit(tenant, uploads, [{"technique": "distill", "params": params}]))

    assert job["status"] == "failed"
    assert job["error"]["type"] == PROBLEMS + "unknown-tensor" and "no_such_tensor" in job["error"]["detail"]


def test_a_referenced_student_cannot_be_deleted_while_its_job_runs(
    tenant: Api, uploads: dict[str, Any]
) -> None:
    params = {"dataset_id": uploads["inputs"], "student_model_id": uploads["student"], "epochs": 50}
    response = submit(tenant, uploads, [{"technique": "distill", "params": params}])
    assert response.status_code == 202, response.text

    refused = tenant.delete(f"/v1/models/{uploads['student']}")
    tenant.post(f"/v1/jobs/{response.json()['id']}/cancel")

    assert refused.status_code == 409, refused.text
