"""A model with a scalar input (silero-vad's sample rate): datasets carry it once, every step feeds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import model_zoo
from tests.fixtures.api import Api

RATE = 16000


def _rate_gated_model(path: Path) -> Path:
    """frames (batch, 64) -> MatMul -> If(sr == 16000): Relu, else Sigmoid, as silero-vad branches on sr."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32) / 8, "weight")
    rate = numpy_helper.from_array(np.array(RATE, np.int64), "rate")

    def branch(op: str) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(f"{op}_out", TensorProto.FLOAT, ["batch", 32])
        return helper.make_graph([helper.make_node(op, ["hidden"], [f"{op}_out"])], op, [], [out])

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["frames", "weight"], ["hidden"]),
            helper.make_node("Equal", ["sr", "rate"], ["is_16k"]),
            helper.make_node(
                "If", ["is_16k"], ["scores"], then_branch=branch("Relu"), else_branch=branch("Sigmoid")
            ),
        ],
        "rate_gated",
        [
            helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", 64]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 32])],
        initializer=[weight, rate],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def gated(api: Api, tmp_path: Path) -> dict[str, str]:
    """The model ingested, and digits images as frames with one sample rate for all of them."""
    model = api.upload("models", _rate_gated_model(tmp_path / "gated.onnx")).json()
    assert api.wait_model(model["id"])["status"] == "ready"
    images, _ = model_zoo.digits("train")
    np.savez(tmp_path / "frames.npz", frames=images[:96].reshape(96, 64), sr=np.array(RATE, np.int64))
    dataset = api.upload("datasets", tmp_path / "frames.npz")
    assert dataset.status_code == 201, dataset.text
    assert dataset.json()["samples"] == 96
    return {"model": model["id"], "dataset": dataset.json()["id"]}


def _job(api: Api, gated: dict[str, str], step: dict[str, Any]) -> Any:
    evaluation = {"dataset_id": gated["dataset"], "batch_sizes": [1, 8]}
    return api.post("/v1/jobs", json={"model_id": gated["model"], "steps": [step], "evaluation": evaluation})


@pytest.mark.parametrize(
    "step",
    [
        {"technique": "quantize.dynamic"},
        {"technique": "quantize.static", "params": {"dataset_id": "calibration"}},
        {"technique": "quantize.auto", "params": {"dataset_id": "calibration"}},
    ],
    ids=["dynamic", "static", "auto"],
)
def test_every_batch_gets_the_scalar(api: Api, gated: dict[str, str], step: dict[str, Any]) -> None:
    """Evaluation and calibration slice the frames into batches and pass the sample rate along."""
    if "params" in step:
        step = {**step, "params": {"dataset_id": gated["dataset"]}}
    submitted = _job(api, gated, step)
    assert submitted.status_code == 202, submitted.text
    job = api.wait_job(submitted.json()["id"])
    assert job["status"] == "succeeded", job.get("error")
    comparison = job["comparison"]
    assert set(comparison["candidate"]["latency_ms"]) == {"1", "8"}
    # Relu's branch ran (sr = 16000): int8 keeps its outputs close to the original's.
    assert comparison["delta"]["fidelity"]["cosine"] > 0.95


def test_a_scalar_input_given_per_sample_values_is_refused(
    api: Api, gated: dict[str, str], tmp_path: Path
) -> None:
    images, _ = model_zoo.digits("train")
    np.savez(tmp_path / "per_sample.npz", frames=images[:8].reshape(8, 64), sr=np.full(8, RATE, np.int64))
    dataset = api.upload("datasets", tmp_path / "per_sample.npz").json()["id"]
    refused = _job(api, {**gated, "dataset": dataset}, {"technique": "quantize.dynamic"})
    assert refused.status_code == 422
    assert "sr" in refused.json()["detail"]


def test_a_dataset_of_scalars_only_is_refused(api: Api, tmp_path: Path) -> None:
    np.savez(tmp_path / "scalars.npz", sr=np.array(RATE, np.int64))
    refused = api.upload("datasets", tmp_path / "scalars.npz")
    assert refused.status_code == 422
    assert "at least one needs a first (sample) axis" in refused.json()["detail"]
