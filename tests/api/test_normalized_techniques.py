"""A Constant-weight export through the service: normalized at ingest, then pruned and quantized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tests import model_zoo
from tests.fixtures.api import Api
from tests.worker.converter_graphs import constant_weights


@pytest.fixture
def constant_model(api: Api, cnn: nn.Module, tmp_path: Path) -> dict[str, str]:
    """The digits CNN as paddle2onnx writes it (opset 11, Constant weights), ingested, and digits inputs."""
    images, _ = model_zoo.digits("train")
    np.savez(tmp_path / "calibration.npz", x=images[:64])
    torch.onnx.export(
        cnn, (torch.zeros(2, 1, 8, 8),), str(tmp_path / "cnn11.onnx"),
        input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=11, dynamo=False,
    )  # fmt: skip
    model = api.upload("models", constant_weights(tmp_path / "cnn11.onnx", tmp_path / "constant.onnx")).json()
    ready = api.wait_model(model["id"])
    assert ready["status"] == "ready", ready
    changes = ready["normalization"]["changes"]
    assert ready["normalization"]["applied"] is True and changes["constants_lifted"] > 0
    assert changes["opset"] == [11, 13] and ready["opset"] == 11
    assert ready["op_histogram"]["Constant"] > 0  # the description keeps the upload's graph, the baseline
    return {
        "model": model["id"],
        "calibration": api.upload("datasets", tmp_path / "calibration.npz").json()["id"],
    }


def _succeeds(api: Api, model: dict[str, str], step: dict[str, object]) -> dict[str, Any]:
    evaluation = {"dataset_id": model["calibration"], "batch_sizes": [8]}
    submitted = api.post(
        "/v1/jobs", json={"model_id": model["model"], "steps": [step], "evaluation": evaluation}
    )
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_prune_nm_finds_the_lifted_weights(api: Api, constant_model: dict[str, str]) -> None:
    job = _succeeds(api, constant_model, {"technique": "prune.nm"})
    metrics = job["steps"][0]["metrics"]
    assert metrics["layers"] and metrics["all_valid"] is True and metrics["overall_sparsity"] >= 0.4


def test_static_int8_of_an_old_opset_loads(api: Api, constant_model: dict[str, str]) -> None:
    """Per-channel DequantizeLinear needs opset 13: below it onnxruntime refused the graph (INVALID_GRAPH)."""
    params = {"dataset_id": constant_model["calibration"]}
    job = _succeeds(api, constant_model, {"technique": "quantize.static", "params": params})
    assert job["steps"][0]["metrics"]["per_channel_weights"] > 0
    assert job["comparison"]["delta"]["fidelity"]["top1_agreement"] > 0.8


def test_quantize_auto_writes_a_graph_onnxruntime_loads(api: Api, constant_model: dict[str, str]) -> None:
    params = {"dataset_id": constant_model["calibration"], "timing_budget_s": 0.05}
    job = _succeeds(api, constant_model, {"technique": "quantize.auto", "params": params})
    assert job["comparison"]["candidate"]["size_bytes"] < job["comparison"]["baseline"]["size_bytes"]
