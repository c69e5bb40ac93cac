"""Advice computed from where the error is, naming the responsible step and only settings it did not use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine.contract import StepContext
from engine.evaluate import compare_models
from engine.evaluate.describe import op_histogram
from engine.evaluate.node_errors import node_errors
from engine.evaluate.step_advice import error_carriers, rescue
from engine.techniques.prune import magnitude as prune_magnitude
from engine.techniques.quantize import dynamic as quantize_dynamic
from service.catalog.prune import MagnitudePruneParams
from service.catalog.quantize import DynamicQuantParams
from tests.worker.recurrent_models import FEATURES, STEPS, write_speaker_encoder

FRAMES = np.random.default_rng(0).normal(size=(64, STEPS, FEATURES)).astype(np.float32)
FAST = {"threads": 1, "time_budget_s": 0.2, "warmup_runs": 2, "min_runs": 3}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_speaker_encoder(tmp_path_factory.mktemp("encoder") / "encoder.onnx")


def _dynamic(source: Path, target: Path, **params: Any) -> Path:
    quantize_dynamic.run(source, target, DynamicQuantParams(**params), StepContext(workdir=target.parent))
    return target


def _cosine_gap(baseline: Path, candidate: Path) -> float:
    """1 - mean cosine between the two models' embeddings of the same frames."""
    a, b = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": FRAMES})[0]
        for p in (baseline, candidate)
    )
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(1.0 - np.mean(cosine))


def _errors(baseline: Path, candidate: Path) -> list[dict[str, Any]]:
    found = node_errors(
        onnx.load(str(baseline)), onnx.load(str(candidate)), {"x": FRAMES[:8]}, threads=1, budget_s=5.0
    )
    assert found is not None
    return found


def test_lstm_error_leads_to_keeping_the_lstm_in_float_which_rescues_fidelity(
    encoder: Path, tmp_path: Path
) -> None:
    default = _dynamic(encoder, tmp_path / "default.onnx", per_channel=False)
    errors = _errors(encoder, default)
    assert error_carriers(errors) == ["LSTM"]
    hints = rescue("quantize.dynamic", {"per_channel": False}, errors, op_histogram(onnx.load(str(encoder))))
    assert hints[0] == 'op_types ["Gemm"] keeps LSTM in float, where the error is added'
    assert "per_channel true (one scale per output channel)" in hints
    # Following the first hint keeps the embedding closer to the float model's than the default did.
    advised = _dynamic(encoder, tmp_path / "advised.onnx", op_types=["Gemm"])
    assert _cosine_gap(encoder, advised) < _cosine_gap(encoder, default)


def test_settings_the_step_already_used_are_not_suggested(encoder: Path, tmp_path: Path) -> None:
    candidate = _dynamic(encoder, tmp_path / "per-channel.onnx", per_channel=True)
    errors = _errors(encoder, candidate)
    ops = op_histogram(onnx.load(str(encoder)))
    hints = rescue("quantize.dynamic", {"per_channel": True}, errors, ops)
    assert not any("per_channel" in hint for hint in hints)
    already = rescue(
        "quantize.dynamic",
        {"per_channel": True, "op_types": ["Gemm"], "nodes_to_exclude": ["/lstm/LSTM"]},
        errors,
        ops,
    )
    assert not any(hint.startswith("op_types") for hint in already)
    assert not any("/lstm/LSTM" in hint for hint in already)
    static = rescue(
        "quantize.static",
        {"dataset_id": "d", "calibration_method": "Entropy", "per_channel": True},
        errors,
        ops,
    )
    assert not any("calibration_method" in hint or "per_channel" in hint for hint in static)
    assert rescue("no.such.technique", {}, errors, ops) == []


def test_a_chain_names_the_pruning_step_that_lost_the_accuracy(
    mlp_onnx: Path, mlp_signature: dict[str, Any], digits_npz: Path, tmp_path: Path
) -> None:
    """prune.magnitude at 95% without fine-tuning, then per-channel dynamic int8: pruning is to blame."""
    pruned = tmp_path / "pruned.onnx"
    prune_magnitude.run(mlp_onnx, pruned, MagnitudePruneParams(sparsity=0.95), StepContext(workdir=tmp_path))
    final = _dynamic(pruned, tmp_path / "final.onnx", per_channel=True)
    steps = [
        {"index": 0, "technique": "prune.magnitude", "params": {"sparsity": 0.95}, "path": str(pruned)},
        {"index": 1, "technique": "quantize.dynamic", "params": {"per_channel": True}, "path": str(final)},
    ]
    comparison = compare_models(
        str(mlp_onnx), str(final), signature=mlp_signature, dataset_path=str(digits_npz), metric="top1",
        batch_sizes=[8], max_accuracy_drop=0.01, steps=steps, **FAST,
    )  # fmt: skip
    first, second = comparison["per_step"]
    assert (first["technique"], second["technique"]) == ("prune.magnitude", "quantize.dynamic")
    assert second["size_bytes"] == comparison["candidate"]["size_bytes"]
    assert second["accuracy"]["top1"] == pytest.approx(comparison["candidate"]["accuracy"]["top1"])
    # The steps' added drops add up to the whole chain's drop.
    total = first["added"]["accuracy_drop"] + second["added"]["accuracy_drop"]
    assert total == pytest.approx(comparison["delta"]["accuracy_drop"])
    assert first["added"]["accuracy_drop"] > 0.05 > second["added"]["accuracy_drop"]
    assert second["added"]["size_ratio"] < 0.5  # int8 weights are a quarter of float32's
    (warning,) = [w for w in comparison["verdict"]["warnings"] if w.startswith("top1 dropped by")]
    assert "step 0 (prune.magnitude) lost the most" in warning
    assert "finetune" in warning and "a lower sparsity than 0.95" in warning
    assert "per_channel" not in warning and "quantize.auto" not in warning


def test_a_single_static_step_with_per_channel_is_not_told_to_use_per_channel(
    cnn_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    """The job that had per_channel true and was told to try per_channel true (issue 17) no longer is."""
    from engine.evaluate.precision import STATIC_INT8
    from engine.evaluate.verdict import judge
    from engine.techniques.quantize import static as quantize_static
    from service.catalog.quantize_static import StaticQuantParams

    output = tmp_path / "static.onnx"
    params = {"dataset_id": "calibration", "per_channel": True}
    context = StepContext(workdir=tmp_path, datasets={"calibration": digits_npz})
    quantize_static.run(cnn_onnx, output, StaticQuantParams(**params), context)
    images = np.load(digits_npz)["x"][:8]
    errors = node_errors(
        onnx.load(str(cnn_onnx)), onnx.load(str(output)), {"x": images}, threads=1, budget_s=5.0
    )
    assert errors
    verdict = judge(
        size_ratio=0.3, speedup={"8": 2.0}, accuracy_drop=0.05, max_accuracy_drop=0.01, metric="top1",
        fidelity={"cosine": 0.999, "top1_agreement": 0.99},
        baseline_ops=op_histogram(onnx.load(str(cnn_onnx))),
        candidate_ops={"QuantizeLinear": 4}, candidate_kind=STATIC_INT8, node_errors=errors,
        steps=[{"index": 0, "technique": "quantize.static", "params": params}],
    )  # fmt: skip
    (warning,) = [w for w in verdict["warnings"] if w.startswith("top1 dropped by")]
    assert "step 0 (quantize.static) is where the loss comes from" in warning
    assert "per_channel" not in warning
    assert 'calibration_method "Entropy" or "Percentile"' in warning
    assert "quantize.auto with max_accuracy_drop=0.01" in warning


def test_weight_only_advice_names_finer_blocks_and_float_zero_points_only_where_unused() -> None:
    plain = rescue("quantize.weight_only", {"algorithm": "rtn"}, [], {"MatMul": 4})
    assert any(hint.startswith("block_size 32") for hint in plain)
    assert any(hint.startswith("float_zero_points true") for hint in plain)
    assert any(hint.startswith("algorithm gptq") for hint in plain)

    tuned = {"algorithm": "gptq", "block_size": 32, "dataset_id": "tokens", "float_zero_points": True}
    assert not [
        hint
        for hint in rescue("quantize.weight_only", tuned, [], {"MatMul": 4})
        if hint.startswith(("block_size", "float_zero_points", "algorithm"))
    ]
