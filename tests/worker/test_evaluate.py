"""Evaluation: the comparison object, honest numbers, and a verdict that follows from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from engine.contract import TechniqueError
from engine.evaluate import compare_models, describe_model
from engine.evaluate.inputs import generate_inputs, load_dataset
from engine.evaluate.memory import peak_memory_bytes
from engine.evaluate.sessions import CHUNK
from engine.example_shapes import EXAMPLE_SIZES
from tests import model_zoo

FAST = {"threads": 1, "time_budget_s": 0.3, "warmup_runs": 3, "min_runs": 5}
SIDE_KEYS = {
    "size_bytes", "compressed_size_bytes", "parameters", "nonzero_parameters", "latency_ms",
    "throughput_per_s", "peak_memory_bytes", "accuracy",
}  # fmt: skip
OPTIONAL_SIDE_KEYS = {"per_layer_sparsity"}


def _compare(baseline: Path, candidate: Path, signature: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "dataset_path": None, "metric": None, "batch_sizes": [1, 8], "max_accuracy_drop": None, **FAST,
    }  # fmt: skip
    options.update(overrides)
    return compare_models(str(baseline), str(candidate), signature=signature, **options)


def _logits(path: Path, images: np.ndarray) -> np.ndarray:
    # Dynamic int8 picks activation scales per batch, so outputs depend on how samples are batched.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    chunks = [images[start : start + CHUNK] for start in range(0, len(images), CHUNK)]
    return np.concatenate([session.run(None, {"x": chunk})[0] for chunk in chunks])


@pytest.fixture(scope="module")
def comparison(
    mlp_onnx: Path, mlp_int8: Path, mlp_signature: dict[str, Any], digits_npz: Path
) -> dict[str, Any]:
    """The MLP against its dynamic int8 version, on the labelled digits test split."""
    return _compare(mlp_onnx, mlp_int8, mlp_signature, dataset_path=str(digits_npz), max_accuracy_drop=0.02)


def test_comparison_has_the_documented_shape(comparison: dict[str, Any]) -> None:
    assert set(comparison) == {
        "baseline", "candidate", "delta", "verdict", "node_errors", "profile", "per_step", "environment"
    }  # fmt: skip
    assert comparison["profile"]["batch"] == "8"
    assert comparison["profile"]["candidate"]["total_ms"] > 0
    assert json.loads(json.dumps(comparison, allow_nan=False)) == comparison
    for side in (comparison["baseline"], comparison["candidate"]):
        assert SIDE_KEYS <= set(side) <= SIDE_KEYS | OPTIONAL_SIDE_KEYS
        assert set(side["latency_ms"]) == set(side["throughput_per_s"]) == {"1", "8"}
        for batch, latency in side["latency_ms"].items():
            assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
            assert side["throughput_per_s"][batch] > 0
        assert side["peak_memory_bytes"] > 0
    assert set(comparison["delta"]) == {
        "size_ratio",
        "compressed_size_ratio",
        "speedup",
        "accuracy_drop",
        "fidelity",
    }
    assert set(comparison["verdict"]) == {"smaller", "faster", "within_accuracy_budget", "warnings"}
    environment = comparison["environment"]
    assert environment["threads"] == 1
    assert environment["runtime"] == f"onnxruntime {ort.__version__} CPUExecutionProvider"
    assert environment["versions"]["onnxruntime"] == ort.__version__
    assert environment["cpu"]


def test_int8_mlp_is_smaller_with_the_same_parameters(comparison: dict[str, Any]) -> None:
    baseline, candidate, delta = comparison["baseline"], comparison["candidate"], comparison["delta"]
    assert delta["size_ratio"] == candidate["size_bytes"] / baseline["size_bytes"] < 0.5
    assert candidate["parameters"] == baseline["parameters"] == 8970
    assert comparison["verdict"]["smaller"] is True
    for batch, speedup in delta["speedup"].items():
        assert speedup == baseline["latency_ms"][batch]["p50"] / candidate["latency_ms"][batch]["p50"]


def test_accuracy_and_fidelity_match_an_independent_computation(
    comparison: dict[str, Any], mlp_onnx: Path, mlp_int8: Path
) -> None:
    images, labels = model_zoo.digits()
    original, quantized = _logits(mlp_onnx, images), _logits(mlp_int8, images)
    expected = [float(np.mean(logits.argmax(1) == labels)) for logits in (original, quantized)]
    assert comparison["baseline"]["accuracy"] == {"top1": pytest.approx(expected[0])}
    assert comparison["candidate"]["accuracy"] == {"top1": pytest.approx(expected[1])}
    assert comparison["delta"]["accuracy_drop"] == pytest.approx(expected[0] - expected[1])
    assert comparison["verdict"]["within_accuracy_budget"] is (expected[0] - expected[1] <= 0.02)
    fidelity = comparison["delta"]["fidelity"]
    assert fidelity["cosine"] > 0.99
    assert fidelity["top1_agreement"] == pytest.approx(np.mean(original.argmax(1) == quantized.argmax(1)))
    assert fidelity["max_abs_error"] == pytest.approx(np.abs(original - quantized).max(), rel=1e-5)


def test_float_labels_are_scored_as_regression(
    mlp_onnx: Path, mlp_int8: Path, mlp_signature: dict[str, Any], tmp_path: Path
) -> None:
    images, _ = model_zoo.digits()
    targets = _logits(mlp_onnx, images)
    np.savez(tmp_path / "regression.npz", x=images, labels=targets)
    result = _compare(
        mlp_onnx, mlp_int8, mlp_signature, dataset_path=str(tmp_path / "regression.npz"), batch_sizes=[4]
    )
    error = float(np.mean((_logits(mlp_int8, images) - targets) ** 2))
    assert result["baseline"]["accuracy"] == {"mse": pytest.approx(0.0, abs=1e-9)}
    assert result["candidate"]["accuracy"] == {"mse": pytest.approx(error, rel=1e-4)}
    assert result["delta"]["accuracy_drop"] == pytest.approx(error, rel=1e-4)


def test_without_labels_the_budget_is_judged_by_fidelity(
    mlp_onnx: Path, mlp_int8: Path, mlp_signature: dict[str, Any]
) -> None:
    result = _compare(mlp_onnx, mlp_int8, mlp_signature, batch_sizes=[2], max_accuracy_drop=0.01)
    assert result["baseline"]["accuracy"] == result["candidate"]["accuracy"] == {}
    assert result["delta"]["accuracy_drop"] is None
    assert result["verdict"]["within_accuracy_budget"] is None
    assert any("no labels" in warning for warning in result["verdict"]["warnings"])
    assert result["delta"]["fidelity"]["cosine"] > 0.99


def _slower(model_path: Path, target: Path) -> Path:
    """The same model plus a costly branch multiplied by zero, so its outputs are unchanged."""
    model = onnx.load(str(model_path))
    graph = model.graph
    weight = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 16
    graph.initializer.extend(
        [numpy_helper.from_array(weight, "slow_w"), numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    )
    graph.initializer.append(numpy_helper.from_array(np.array([-1, 64], np.int64), "flat"))
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["slow_0"])]
    for step in range(300):
        nodes.append(helper.make_node("MatMul", [f"slow_{step}", "slow_w"], [f"slow_{step + 1}"]))
    nodes.append(helper.make_node("ReduceSum", ["slow_300"], ["slow_sum"], keepdims=0))
    nodes.append(helper.make_node("Mul", ["slow_sum", "zero"], ["slow_zero"]))
    logits = graph.output[0].name
    for node in graph.node:
        node.output[:] = [name + "_fast" if name == logits else name for name in node.output]
    nodes.append(helper.make_node("Add", [logits + "_fast", "slow_zero"], [logits]))
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


def test_a_slower_candidate_is_reported(
    mlp_onnx: Path, mlp_signature: dict[str, Any], tmp_path: Path
) -> None:
    result = _compare(mlp_onnx, _slower(mlp_onnx, tmp_path / "slow.onnx"), mlp_signature)
    speedup = result["delta"]["speedup"]
    assert all(value < 1.0 for value in speedup.values())
    assert result["verdict"]["faster"] is False
    for batch, value in speedup.items():
        assert (
            f"candidate is not faster than the original at batch {batch} ({value:.2f}x)"
            in result["verdict"]["warnings"]
        )
    assert result["delta"]["fidelity"]["top1_agreement"] == 1.0


def test_peak_memory_is_the_childs_own_not_the_workers(mlp_onnx: Path) -> None:
    ballast = np.ones(32 * 1024**2, np.float32)  # 128 MiB resident in this process
    images, _ = model_zoo.digits()
    peak = peak_memory_bytes(mlp_onnx, {"x": images[:8]}, threads=1)
    assert peak is not None
    assert 0 < peak < 64 * 1024**2 < ballast.nbytes


def test_describe_counts_quantized_weights_once(mlp_onnx: Path, mlp_int8: Path, tmp_path: Path) -> None:
    model = onnx.load(str(mlp_onnx))
    first = model.graph.initializer[0]
    weights = numpy_helper.to_array(first).copy()
    weights[: len(weights) // 2] = 0
    first.CopyFrom(numpy_helper.from_array(weights, first.name))
    onnx.save(model, str(tmp_path / "pruned.onnx"))
    original, pruned = describe_model(str(mlp_onnx)), describe_model(str(tmp_path / "pruned.onnx"))
    assert original["size_bytes"] == mlp_onnx.stat().st_size
    assert pruned["parameters"] == original["parameters"] == describe_model(str(mlp_int8))["parameters"]
    assert original["nonzero_parameters"] - pruned["nonzero_parameters"] == weights.size // 2


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_static_int8_formats_keep_the_parameter_count(
    quant_format: str, cnn_onnx: Path, tmp_path: Path
) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    images, _ = model_zoo.digits("train")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": images[start : start + 32]} for start in range(0, 128, 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    output = tmp_path / "static.onnx"
    quantize_static(cnn_onnx, output, Reader(), quant_format=QuantFormat[quant_format], per_channel=True)
    assert describe_model(str(output))["parameters"] == describe_model(str(cnn_onnx))["parameters"]


def test_describe_compares_quantized_weights_with_their_zero_point(tmp_path: Path) -> None:
    stored = np.array([[128, 130], [128, 1]], np.uint8)
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["w_float"]),
         helper.make_node("MatMul", ["x", "w_float"], ["y"])],
        "q",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(stored, "w"), numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
         numpy_helper.from_array(np.array(128, np.uint8), "zp")],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(tmp_path / "q.onnx"))
    described = describe_model(str(tmp_path / "q.onnx"))
    assert described["parameters"] == 4
    assert described["nonzero_parameters"] == 2


@pytest.mark.parametrize(
    ("arrays", "slug"),
    [
        ({"image": np.zeros((3, 1, 8, 8), np.float32)}, "dataset-mismatch"),
        ({"x": np.zeros((3, 64), np.float32)}, "dataset-mismatch"),
        ({"x": np.zeros((3, 1, 8, 8), np.float32), "labels": np.zeros(2, np.int64)}, "dataset-mismatch"),
        ({"x": np.array([{"pickled": True}], dtype=object)}, "invalid-dataset"),
    ],
)
def test_dataset_problems_are_user_errors(
    arrays: dict[str, np.ndarray], slug: str, mlp_signature: dict[str, Any], tmp_path: Path
) -> None:
    np.savez(tmp_path / "data.npz", **arrays)
    with pytest.raises(TechniqueError) as caught:
        load_dataset(tmp_path / "data.npz", mlp_signature)
    assert caught.value.slug == slug


def test_generated_inputs_follow_the_signature() -> None:
    signature = {
        "inputs": [
            {"name": "tokens", "dtype": "int64", "shape": ["batch", "sequence"]},
            {"name": "image", "dtype": "float32", "shape": [None, 3, "height", 5]},
        ]
    }
    arrays = generate_inputs(signature, 4)
    assert arrays["tokens"].shape == (4, EXAMPLE_SIZES[0]) and arrays["tokens"].dtype == np.int64
    assert arrays["tokens"].min() >= 0
    assert arrays["image"].shape == (4, 3, EXAMPLE_SIZES[0], 5) and arrays["image"].dtype == np.float32
    np.testing.assert_array_equal(generate_inputs(signature, 4)["image"], arrays["image"])
