"""A Constant-weight export through the service: normalized at ingest, then pruned and quantized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import model_zoo
from tests.fixtures.api import Api
from tests.worker.converter_graphs import constant_weights


@pytest.fixture
def constant_model(api: Api, cnn_onnx: Path, tmp_path: Path) -> dict[str, str]:
    """The digits CNN as paddle2onnx-style Constant weights, ingested, and a calibration dataset."""
    images, _ = model_zoo.digits("train")
    np.savez(tmp_path / "calibration.npz", x=images[:64])
    model = api.upload("models", constant_weights(cnn_onnx, tmp_path / "constant.onnx")).json()
    ready = api.wait_model(model["id"])
    assert ready["status"] == "ready", ready
    assert (
        ready["normalization"]["applied"] is True
        and ready["normalization"]["changes"]["constants_lifted"] > 0
    )
    assert ready["op_histogram"]["Constant"] > 0  # the description keeps the upload's graph, the baseline
    return {
        "model": model["id"],
        "calibration": api.upload("datasets", tmp_path / "calibration.npz").json()["id"],
    }


def _succeeds(api: Api, model_id: str, step: dict[str, object]) -> dict[str, object]:
    submitted = api.post(
        "/v1/jobs", json={"model_id": model_id, "steps": [step], "evaluation": {"batch_sizes": [8]}}
    )
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_prune_nm_finds_the_lifted_weights(api: Api, constant_model: dict[str, str]) -> None:
    job = _succeeds(api, constant_model["model"], {"technique": "prune.nm"})
    metrics = job["steps"][0]["metrics"]
    assert metrics["layers"] and metrics["all_valid"] is True and metrics["overall_sparsity"] >= 0.4


def test_quantize_auto_writes_a_graph_onnxruntime_loads(api: Api, constant_model: dict[str, str]) -> None:
    params = {"dataset_id": constant_model["calibration"], "timing_budget_s": 0.05}
    job = _succeeds(api, constant_model["model"], {"technique": "quantize.auto", "params": params})
    assert job["comparison"]["candidate"]["size_bytes"] < job["comparison"]["baseline"]["size_bytes"]
