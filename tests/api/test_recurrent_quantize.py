"""quantize.dynamic on recurrent models through the service: LSTM and GRU classifiers trained on digits."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import model_zoo
from tests.fixtures.api import Api
from tests.worker.recurrent_models import dead_feature_inputs, write_lstm


@pytest.fixture(scope="module")
def recurrent_onnx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Digits rows as 8-step sequences through an LSTM and a GRU, each trained and exported."""
    folder = tmp_path_factory.mktemp("recurrent")
    built = {}
    for kind in ("lstm", "gru"):
        model = model_zoo.trained(partial(model_zoo.DigitsRecurrent, kind), epochs=40)
        assert model_zoo.accuracy(model) > 0.85
        built[kind] = model_zoo.export_onnx(model, folder / f"{kind}.onnx")
    return built


def _job(api: Api, model: Path, dataset: Path, params: dict[str, Any], **evaluation: Any) -> dict[str, Any]:
    uploaded = api.upload("models", model).json()
    assert api.wait_model(uploaded["id"])["status"] == "ready"
    dataset_id = api.upload("datasets", dataset).json()["id"]
    body = {
        "model_id": uploaded["id"],
        "steps": [{"technique": "quantize.dynamic", "params": params}],
        "evaluation": {"dataset_id": dataset_id, "batch_sizes": [8], **evaluation},
    }
    submitted = api.post("/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_lstm_classifier_keeps_its_accuracy_in_int8(
    api: Api, recurrent_onnx: dict[str, Path], digits_npz: Path
) -> None:
    job = _job(api, recurrent_onnx["lstm"], digits_npz, {}, metric="top1", max_accuracy_drop=0.02)
    step, comparison = job["steps"][0], job["comparison"]
    assert step["metrics"]["quantized_by_op_type"]["LSTM"] == 1
    assert comparison["baseline"]["accuracy"]["top1"] > 0.85
    assert comparison["delta"]["accuracy_drop"] <= 0.02
    assert comparison["verdict"]["within_accuracy_budget"] is True
    assert not any("LSTM" in warning for warning in comparison["verdict"]["warnings"])


def test_gru_without_an_int8_kernel_is_named(
    api: Api, recurrent_onnx: dict[str, Path], digits_npz: Path
) -> None:
    job = _job(api, recurrent_onnx["gru"], digits_npz, {}, metric="top1", max_accuracy_drop=0.02)
    step, verdict = job["steps"][0], job["comparison"]["verdict"]
    assert "GRU" not in step["metrics"]["quantized_by_op_type"]
    assert any("no int8 GRU kernel" in warning for warning in step["warnings"])
    (named,) = [w for w in verdict["warnings"] if w.startswith("onnxruntime has no int8 GRU kernel")]
    # The verdict ties the missing speedup to the GRU rather than reporting a slower model as a success.
    assert verdict["faster"] or "not faster: keep the fp32 model" in named


def test_gru_cannot_be_requested_as_an_op_type(api: Api, recurrent_onnx: dict[str, Path]) -> None:
    model = api.upload("models", recurrent_onnx["gru"]).json()
    step = {"technique": "quantize.dynamic", "params": {"op_types": ["GRU"]}}
    submitted = api.post("/v1/jobs", json={"model_id": model["id"], "steps": [step]})
    job = api.wait_job(submitted.json()["id"]) if submitted.status_code == 202 else submitted.json()
    error = job.get("error") or job
    assert "no int8 GRU kernel" in error["detail"]


def test_ruinous_int8_lstm_weights_are_named_with_the_fix(api: Api, tmp_path: Path) -> None:
    """A dead input with large weights sets every LSTM row's int8 scale; keeping the LSTM float fixes it."""
    model = write_lstm(tmp_path / "dead.onnx", dead_feature_weight=40.0)
    np.savez(tmp_path / "inputs.npz", x=dead_feature_inputs(64))
    ruined = _job(api, model, tmp_path / "inputs.npz", {})
    verdict = ruined["comparison"]["verdict"]
    assert ruined["comparison"]["delta"]["fidelity"]["cosine"] < 0.99
    assert any(
        w.startswith("the int8 LSTM weights changed the outputs") and 'op_types ["MatMul", "Gemm"]' in w
        for w in verdict["warnings"]
    ), verdict
    kept = _job(api, model, tmp_path / "inputs.npz", {"op_types": ["MatMul", "Gemm"]})
    assert kept["comparison"]["delta"]["fidelity"]["cosine"] > 0.9999
    assert kept["steps"][0]["metrics"]["quantized_by_op_type"] == {}
