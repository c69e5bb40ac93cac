"""ModelPress's int8 default rules: LayerNorm outlier smoothing, per-channel weights on convolutions only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from engine.contract import StepContext, StepOutcome
from engine.techniques.quantize import dynamic as quantize_dynamic
from engine.techniques.quantize import static as quantize_static
from engine.techniques.quantize.int8.smoothing import SUFFIX, smooth_layernorm_outliers
from service.catalog.quantize import DynamicQuantParams
from service.catalog.quantize_static import StaticQuantParams
from tests import model_zoo
from tests.worker.int8_models import LAYERNORM_READERS, TinyEncoder, layernorm_graph, with_outliers


@pytest.fixture(scope="module")
def encoder_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained encoder as ONNX."""
    model = model_zoo.trained(TinyEncoder, epochs=8)
    return model_zoo.export_onnx(model, tmp_path_factory.mktemp("encoder") / "encoder.onnx")


@pytest.fixture(scope="module")
def outlier_onnx(encoder_onnx: Path) -> Path:
    """The same encoder with a few LayerNorm channels 100x wider and their weight rows 100x smaller."""
    model = onnx.load(str(encoder_onnx))
    with_outliers(model)
    path = encoder_onnx.with_name("outliers.onnx")
    onnx.save(model, str(path))
    return path


def _logits(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": model_zoo.digits()[0]})[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def _quantize(kind: str, model: Path, tmp_path: Path, **params: Any) -> tuple[StepOutcome, Path]:
    work, output = tmp_path / f"work-{kind}", tmp_path / f"{kind}.onnx"
    work.mkdir(parents=True, exist_ok=True)
    if kind == "dynamic":
        return quantize_dynamic.run(
            model, output, DynamicQuantParams(**params), StepContext(workdir=work)
        ), output
    dataset = model_zoo.write_dataset(tmp_path / "digits.npz")
    context = StepContext(workdir=work, datasets={"d": dataset})
    return quantize_static.run(model, output, StaticQuantParams(dataset_id="d", **params), context), output


def test_smoothing_keeps_the_float_function_and_flattens_the_layernorms(
    outlier_onnx: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(outlier_onnx))
    smoothed = smooth_layernorm_outliers(model)
    assert {item.layernorm: item.weights_of for item in smoothed} == {
        name: [reader] for name, (reader, _) in LAYERNORM_READERS.items()
    }
    assert all(item.ratio_before > 50 and item.ratio_after < 8 for item in smoothed)
    renamed = {node.output[0] for node in model.graph.node if node.name in LAYERNORM_READERS}
    assert all(name.endswith(SUFFIX) for name in renamed)
    path = tmp_path / "smoothed.onnx"
    onnx.save(model, str(path))
    np.testing.assert_allclose(_logits(path), _logits(outlier_onnx), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_smoothing_restores_int8_fidelity_on_outlier_channels(
    kind: str, encoder_onnx: Path, outlier_onnx: Path, tmp_path: Path
) -> None:
    """With smoothing, int8 is as faithful on the outlier variant as on the encoder without outliers."""
    reference = _logits(outlier_onnx)
    outcome, smoothed = _quantize(kind, outlier_onnx, tmp_path / "on")
    _, plain = _quantize(kind, outlier_onnx, tmp_path / "off", smooth_outliers=False)
    _, no_outliers = _quantize(kind, encoder_onnx, tmp_path / "none")
    attainable = _cosine(_logits(no_outliers), _logits(encoder_onnx))
    assert _cosine(_logits(smoothed), reference) >= attainable - 5e-4
    assert _cosine(_logits(plain), reference) < 0.99
    assert len(outcome.metrics["smoothed_layernorms"]) == len(LAYERNORM_READERS)
    assert any("outlier channels" in warning for warning in outcome.warnings)


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_layernorms_without_outliers_are_left_alone(kind: str, encoder_onnx: Path, tmp_path: Path) -> None:
    outcome, output = _quantize(kind, encoder_onnx, tmp_path)
    assert not outcome.metrics.get("smoothed_layernorms")
    assert not any(SUFFIX in name for node in onnx.load(str(output)).graph.node for name in node.output)
    assert _cosine(_logits(output), _logits(encoder_onnx)) >= 0.99


@pytest.mark.parametrize(
    ("reader", "smoothed"),
    [("none", True), ("residual", False), ("shared weight", False), ("reduce over channels", False)],
)
def test_smoothing_only_where_the_scale_reaches_weights_alone(reader: str, smoothed: bool) -> None:
    model = layernorm_graph(reader)
    before = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    assert bool(smooth_layernorm_outliers(model)) is smoothed
    after = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    assert (not np.array_equal(before["gamma"], after["gamma"])) is smoothed


def _weight_scale_sizes(path: Path, op_type: str) -> list[int]:
    """Sizes of the scales that dequantize the constant weights of `op_type` nodes."""
    graph = onnx.load(str(path)).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {node.output[0]: node for node in graph.node}
    sizes = []
    for node in (n for n in graph.node if n.op_type == op_type):
        dequantize = producers.get(node.input[1])
        if dequantize is not None and dequantize.input[0] in initializers:
            sizes.append(int(np.prod(initializers[dequantize.input[1]].dims)))
    return sizes


@pytest.mark.parametrize(
    ("model", "op_type", "per_channel", "per_channel_weights"),
    [
        ("cnn_onnx", "Conv", "auto", True),
        ("mlp_onnx", "Gemm", "auto", False),
        ("mlp_onnx", "Gemm", True, True),
        ("cnn_onnx", "Conv", False, False),
    ],
)
def test_per_channel_auto_means_conv_weights_only(
    model: str,
    op_type: str,
    per_channel: Any,
    per_channel_weights: bool,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    outcome, output = _quantize("static", request.getfixturevalue(model), tmp_path, per_channel=per_channel)
    sizes = _weight_scale_sizes(output, op_type)
    assert sizes and all((size > 1) is per_channel_weights for size in sizes)
    if per_channel == "auto":
        assert outcome.metrics["per_channel_weights"] == (len(sizes) if per_channel_weights else 0)


def test_per_channel_takes_auto_or_a_boolean() -> None:
    assert StaticQuantParams(dataset_id="d").per_channel == "auto"
    assert StaticQuantParams(dataset_id="d", per_channel=True).per_channel is True
    with pytest.raises(ValidationError):
        StaticQuantParams(dataset_id="d", per_channel="conv")
