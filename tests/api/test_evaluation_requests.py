"""An evaluation that names a metric needs labelled data: refused at submit, nothing queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import model_zoo
from tests.api.test_bad_requests import assert_problem
from tests.fixtures.api import Api


@pytest.fixture
def ready_model(api: Api, mlp_onnx: Path) -> dict[str, Any]:
    return api.wait_model(api.upload("models", mlp_onnx).json()["id"])


@pytest.fixture
def unlabelled(api: Api, tmp_path: Path) -> str:
    path = model_zoo.write_dataset(tmp_path / "inputs.npz", labels=False, limit=32)
    return str(api.upload("datasets", path).json()["id"])


@pytest.mark.parametrize("metric", ["top1", "mse"])
def test_a_metric_on_a_dataset_without_labels_is_422(
    api: Api, ready_model: dict[str, Any], unlabelled: str, metric: str
) -> None:
    evaluation = {"dataset_id": unlabelled, "metric": metric}
    response = api.post(
        "/v1/jobs",
        json={
            "model_id": ready_model["id"],
            "steps": [{"technique": "quantize.dynamic"}],
            "evaluation": evaluation,
        },
    )

    body = assert_problem(response, 422, "invalid-params")
    assert "labels" in body["detail"] and body["errors"][0]["loc"] == ["evaluation", "metric"]
    assert api.get("/v1/jobs").json()["items"] == []


def test_a_metric_without_any_dataset_is_422(api: Api, ready_model: dict[str, Any]) -> None:
    response = api.post(
        "/v1/jobs",
        json={"model_id": ready_model["id"], "steps": [{"technique": "quantize.dynamic"}],
              "evaluation": {"metric": "top1"}},
    )  # fmt: skip

    assert_problem(response, 422, "invalid-params")


def test_without_a_metric_unlabelled_data_measures_fidelity(
    api: Api, ready_model: dict[str, Any], unlabelled: str
) -> None:
    response = api.post(
        "/v1/jobs",
        json={"model_id": ready_model["id"], "steps": [{"technique": "quantize.dynamic"}],
              "evaluation": {"dataset_id": unlabelled, "batch_sizes": [1]}},
    )  # fmt: skip

    assert response.status_code == 202, response.text
