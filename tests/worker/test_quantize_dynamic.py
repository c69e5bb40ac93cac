"""quantize.dynamic on the digits models: smaller, still accurate, every parameter honoured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.quantize import dynamic as quantize_dynamic
from service.catalog.quantize import DynamicQuantParams
from tests import model_zoo


def _quantize(model: Path, tmp_path: Path, **params: Any) -> tuple[StepOutcome, Path]:
    output = tmp_path / "quantized.onnx"
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    outcome = quantize_dynamic.run(model, output, DynamicQuantParams(**params), StepContext(workdir=work))
    return outcome, output


def _top1(path: Path) -> float:
    images, labels = model_zoo.digits()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(np.mean(session.run(None, {"x": images})[0].argmax(1) == labels))


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in onnx.load(str(path)).graph.initializer}


def test_mlp_becomes_smaller_and_keeps_its_accuracy(mlp_onnx: Path, tmp_path: Path) -> None:
    outcome, output = _quantize(mlp_onnx, tmp_path)
    assert output.stat().st_size < 0.5 * mlp_onnx.stat().st_size
    assert abs(_top1(output) - _top1(mlp_onnx)) <= 0.02
    assert outcome.metrics == {
        "quantized_nodes": 3,
        "quantized_by_op_type": {"Gemm": 3},
        "kept_float_by_op_type": {},
        "preprocessed": True,
    }
    assert outcome.warnings == []
    assert {node.op_type for node in onnx.load(str(output)).graph.node} >= {
        "MatMulInteger",
        "DynamicQuantizeLinear",
    }


def test_weight_type_and_reduce_range_shape_the_stored_weights(mlp_onnx: Path, tmp_path: Path) -> None:
    _, unsigned = _quantize(mlp_onnx, tmp_path / "u", weight_type="quint8")
    _, reduced = _quantize(mlp_onnx, tmp_path / "r", reduce_range=True)
    unsigned_weights = [a for name, a in _initializers(unsigned).items() if name.endswith("_quantized")]
    reduced_weights = [a for name, a in _initializers(reduced).items() if name.endswith("_quantized")]
    assert unsigned_weights and all(array.dtype == np.uint8 for array in unsigned_weights)
    assert reduced_weights and all(array.dtype == np.int8 for array in reduced_weights)
    assert max(int(np.abs(array.astype(np.int32)).max()) for array in reduced_weights) <= 64


def test_per_channel_stores_one_scale_per_output(mlp_onnx: Path, tmp_path: Path) -> None:
    _, per_tensor = _quantize(mlp_onnx, tmp_path / "t")
    _, per_channel = _quantize(mlp_onnx, tmp_path / "c", per_channel=True)
    assert _initializers(per_tensor)["net.1.weight_scale"].size == 1
    assert _initializers(per_channel)["net.1.weight_scale"].size == 64
    assert abs(_top1(per_channel) - _top1(mlp_onnx)) <= 0.02


def test_op_types_limit_what_is_quantized(cnn_onnx: Path, tmp_path: Path) -> None:
    outcome, output = _quantize(cnn_onnx, tmp_path, op_types=["Conv"])
    assert outcome.metrics["quantized_by_op_type"] == {"Conv": 2}
    ops = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert "ConvInteger" in ops and "MatMulInteger" not in ops


def test_excluded_nodes_stay_float(mlp_onnx: Path, tmp_path: Path) -> None:
    first_gemm = next(node.name for node in onnx.load(str(mlp_onnx)).graph.node if node.op_type == "Gemm")
    outcome, output = _quantize(mlp_onnx, tmp_path, nodes_to_exclude=[first_gemm, "no-such-node"])
    assert outcome.metrics["quantized_by_op_type"] == {"Gemm": 2}
    assert outcome.metrics["kept_float_by_op_type"] == {"Gemm": 1}
    assert _initializers(output)["net.1.weight"].dtype == np.float32
    assert any("no-such-node" in warning for warning in outcome.warnings)


def test_preprocessing_can_be_skipped_or_fail(
    mlp_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped, _ = _quantize(mlp_onnx, tmp_path / "skip", preprocess=False)
    assert skipped.metrics["preprocessed"] is False

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("symbolic shape inference exploded")

    monkeypatch.setattr("onnxruntime.quantization.shape_inference.quant_pre_process", broken)
    failed, output = _quantize(mlp_onnx, tmp_path / "fail")
    assert failed.metrics["preprocessed"] is False
    assert failed.metrics["quantized_nodes"] == 3
    assert any("exploded" in warning for warning in failed.warnings)
    assert abs(_top1(output) - _top1(mlp_onnx)) <= 0.02


def test_unknown_op_type_is_a_parameter_error(mlp_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(TechniqueError) as caught:
        _quantize(mlp_onnx, tmp_path, op_types=["Softmax"])
    assert caught.value.slug == "invalid-params"
