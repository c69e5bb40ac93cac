"""Multi-output models: fidelity per output, and the worst output decides the verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.evaluate import compare_models

SIGNATURE = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 16]}],
    "outputs": [
        {"name": "boxes", "dtype": "float32", "shape": ["batch", 4]},
        {"name": "scores", "dtype": "float32", "shape": ["batch", 5]},
    ],
}
FAST = {"threads": 1, "time_budget_s": 0.1, "warmup_runs": 1, "min_runs": 3}


def _detector_head(path: Path, score_noise: float) -> Path:
    """x -> box regression (4) and class scores (5); `score_noise` perturbs only the score weights."""
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(16, 4)).astype(np.float32)
    scores = rng.normal(size=(16, 5)).astype(np.float32)
    scores += np.random.default_rng(1).normal(scale=score_noise, size=scores.shape).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "Wb"], ["boxes"], name="box_head"),
            helper.make_node("MatMul", ["x", "Ws"], ["scores"], name="score_head"),
        ],
        "detector_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 5]),
        ],
        [numpy_helper.from_array(boxes, "Wb"), numpy_helper.from_array(scores, "Ws")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_the_worst_output_drives_the_verdict(tmp_path: Path) -> None:
    original = _detector_head(tmp_path / "original.onnx", 0.0)
    candidate = _detector_head(tmp_path / "candidate.onnx", 0.8)
    comparison = compare_models(
        str(original), str(candidate), signature=SIGNATURE, dataset_path=None, metric=None,
        batch_sizes=[8], max_accuracy_drop=None, **FAST,
    )  # fmt: skip
    delta = comparison["delta"]
    per_output = delta["fidelity_per_output"]
    assert set(per_output) == {"boxes", "scores"}
    assert per_output["boxes"]["cosine"] > 0.999999  # the box head is untouched
    assert per_output["scores"]["cosine"] < 0.95
    # The first output (boxes) is perfect; the verdict must still see the scores' drift.
    assert delta["fidelity"]["output"] == "scores"
    assert delta["fidelity"]["cosine"] == per_output["scores"]["cosine"]
    (warning,) = [w for w in comparison["verdict"]["warnings"] if "differ noticeably" in w]
    assert "worst output scores" in warning


def test_identical_outputs_are_all_reported_at_cosine_one(tmp_path: Path) -> None:
    original = _detector_head(tmp_path / "original.onnx", 0.0)
    comparison = compare_models(
        str(original), str(original), signature=SIGNATURE, dataset_path=None, metric=None,
        batch_sizes=[8], max_accuracy_drop=None, **FAST,
    )  # fmt: skip
    # Both outputs identical: the worst is still named, at cosine 1.
    assert comparison["delta"]["fidelity"]["cosine"] == 1.0
    assert set(comparison["delta"]["fidelity_per_output"]) == {"boxes", "scores"}
