"""quantize.auto's alternative trials: int8-kernel ops only after a miss, and dynamic int8 for LSTMs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.contract import StepContext, StepOutcome
from engine.techniques.quantize.auto import technique as quantize_auto
from service.catalog.quantize_auto import AutoQuantParams
from tests import model_zoo
from tests.worker.recurrent_models import FEATURES, STEPS, write_lstm

KERNEL_ONLY = "static, int8-kernel ops only"
FAST = {"timing_budget_s": 0.05, "max_eval_samples": 120, "metric": "mse"}


@pytest.fixture(scope="module")
def sharpened_mlp(mlp_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits MLP whose logits are scaled by 50 and soft-maxed: int8 on that Mul and Softmax hurts."""
    model = onnx.load(str(mlp_onnx))
    logits = model.graph.output[0].name
    model.graph.initializer.append(numpy_helper.from_array(np.array(50.0, np.float32), "sharpness"))
    model.graph.node.extend(
        [
            helper.make_node("Mul", [logits, "sharpness"], ["sharp"], name="sharpen"),
            helper.make_node("Softmax", ["sharp"], ["probs"], axis=-1, name="softmax"),
        ]
    )
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10]))
    path = tmp_path_factory.mktemp("sharpened") / "sharpened.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("auto-configs")
    images = model_zoo.digits("train")[0]
    np.savez(folder / "calibration.npz", x=images[:64])
    return {
        "calibration": folder / "calibration.npz",
        "unlabelled": model_zoo.write_dataset(folder / "unlabelled.npz", labels=False, limit=120),
    }


def _auto(model: Path, folder: Path, datasets: dict[str, Path], **params: object) -> tuple[StepOutcome, Path]:
    folder.mkdir()
    output = folder / "auto.onnx"
    options = {**FAST, **params}
    outcome = quantize_auto.run(
        model,
        output,
        AutoQuantParams(dataset_id="calibration", eval_dataset_id="unlabelled", **options),
        StepContext(workdir=folder, datasets=datasets),
    )
    return outcome, output


def _reads_dequantized(path: Path, node_name: str) -> bool:
    graph = onnx.load(str(path)).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return any(node.name == node_name and dequantized & set(node.input) for node in graph.node)


def test_a_miss_is_followed_by_a_trial_of_the_int8_kernel_ops_only(
    sharpened_mlp: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    probe, _ = _auto(sharpened_mlp, tmp_path / "probe", data, max_accuracy_drop=0.0, max_trials=2)
    first, second = probe.metrics["trials"]
    assert (first["config"], second["config"]) == ("static", KERNEL_ONLY)
    assert first["excluded_nodes"] == second["excluded_nodes"] == []
    # Rounding the sharpened logits and the probabilities to 8 bits is what costs the accuracy.
    assert second["accuracy_drop"] < first["accuracy_drop"]
    budget = (first["accuracy_drop"] + second["accuracy_drop"]) / 2
    # Two trials: the dynamic one a Gemm model also gets would compete (tested below).
    outcome, output = _auto(sharpened_mlp, tmp_path / "budget", data, max_accuracy_drop=budget, max_trials=2)
    metrics = outcome.metrics
    assert metrics["within_accuracy_budget"] is True and metrics["chosen_trial"] == 1
    assert metrics["search_stopped"] == f"trial 1 ({KERNEL_ONLY}) met the budget"
    # The Gemm's int8 output still feeds the Mul; the Mul's output reaches the Softmax in float.
    assert _reads_dequantized(output, "sharpen") and not _reads_dequantized(output, "softmax")


def test_a_budget_the_first_trial_meets_adds_only_the_dynamic_trial(
    mlp_onnx: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """A Gemm model gets dynamic int8 as a competitor; no exclusion search follows a met budget."""
    outcome, _ = _auto(mlp_onnx, tmp_path / "mlp", data, max_accuracy_drop=1.0)
    trials = outcome.metrics["trials"]
    assert [row["config"] for row in trials] == ["static", "dynamic"]
    fastest = max(trials, key=lambda row: row["speedup"])
    assert outcome.metrics["chosen_trial"] == fastest["trial"]
    assert outcome.metrics["search_stopped"].endswith("met the budget")


def test_an_lstm_model_gets_a_dynamic_trial_in_static_mode(tmp_path: Path) -> None:
    """Static int8 has no LSTM kernel; dynamic int8 does (DynamicQuantizeLSTM), so auto tries it too."""
    lstm = write_lstm(tmp_path / "lstm.onnx")
    sequences = np.random.default_rng(2).normal(0, 1, (16, STEPS, FEATURES)).astype(np.float32)
    np.savez(tmp_path / "sequences.npz", x=sequences)
    datasets = {"calibration": tmp_path / "sequences.npz", "unlabelled": tmp_path / "sequences.npz"}
    outcome, output = _auto(lstm, tmp_path / "auto", datasets, max_accuracy_drop=1.0)
    configs = [row["config"] for row in outcome.metrics["trials"]]
    assert configs == ["static", "dynamic"]
    chosen = outcome.metrics["trials"][outcome.metrics["chosen_trial"]]
    kinds = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert ("DynamicQuantizeLSTM" in kinds) == (chosen["config"] == "dynamic")


@pytest.fixture(scope="module")
def feature_map_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x (N, 1, 8, 8) -> Conv(1->4, 3x3, pad 1) -> Relu: a feature map, not class scores."""
    weight = np.random.default_rng(3).normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["conv"], ["y"], name="relu"),
        ],
        "map",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 8, 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    path = tmp_path_factory.mktemp("map") / "map.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_outputs_that_are_not_class_scores_are_judged_by_cosine(
    feature_map_cnn: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "auto"
    folder.mkdir()
    output = folder / "auto.onnx"
    outcome = quantize_auto.run(
        feature_map_cnn,
        output,
        AutoQuantParams(dataset_id="calibration", eval_dataset_id="unlabelled", timing_budget_s=0.05),
        StepContext(workdir=folder, datasets=data),
    )
    metrics = outcome.metrics
    assert metrics["metric"] == "cosine" and metrics["baseline_accuracy"] == pytest.approx(1.0)
    images = model_zoo.digits()[0][:120]
    float_map, int8_map = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": images})[0]
        for path in (feature_map_cnn, output)
    )
    a, b = float_map.reshape(len(images), -1), int8_map.reshape(len(images), -1)
    cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert metrics["accuracy"] == pytest.approx(float(np.mean(cosines)), abs=1e-6)
    assert metrics["accuracy_drop"] == pytest.approx(1.0 - metrics["accuracy"], abs=1e-9)


@pytest.fixture(scope="module")
def encoder_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained one-layer transformer encoder over the digits' rows, as ONNX."""
    from tests.worker.int8_models import TinyEncoder

    model = model_zoo.trained(TinyEncoder, epochs=8)
    return model_zoo.export_onnx(model, tmp_path_factory.mktemp("encoder") / "encoder.onnx")


def test_a_transformer_encoder_gets_dynamic_int8_next_to_static(
    encoder_onnx: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """Static alone ended a real encoder at 1.09x where dynamic ran 2x: both compete, the faster wins."""
    outcome, output = _auto(encoder_onnx, tmp_path / "encoder", data, max_accuracy_drop=0.5, metric="cosine")
    trials = outcome.metrics["trials"]
    assert "dynamic" in [row["config"] for row in trials]
    within = [row for row in trials if row["within_budget"]]
    chosen = trials[outcome.metrics["chosen_trial"]]
    assert chosen["speedup"] == max(row["speedup"] for row in within)
    kinds = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert ("MatMulInteger" in kinds or "DynamicQuantizeMatMul" in kinds) == (chosen["config"] == "dynamic")
    assert all(set(row["latency_percentiles_ms"]) >= {"p50", "p99"} for row in trials)
