"""quantize.dynamic on an LSTM: per-channel weight scales by default, closer to the float model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from engine.contract import StepContext
from engine.techniques.quantize import dynamic as quantize_dynamic
from service.catalog.quantize import DynamicQuantParams
from tests.worker.recurrent_models import FEATURES, HIDDEN, STEPS, write_lstm


@pytest.fixture(scope="module")
def lstm_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One LSTM layer whose gate rows differ in scale by 100x."""
    return write_lstm(tmp_path_factory.mktemp("lstm") / "lstm.onnx")


def _quantize(model: Path, folder: Path, **params: object) -> Path:
    folder.mkdir()
    output = folder / "int8.onnx"
    quantize_dynamic.run(model, output, DynamicQuantParams(**params), StepContext(workdir=folder))
    return output


def _largest_scale(path: Path) -> int:
    model = onnx.load(str(path))
    return max(numpy_helper.to_array(t).size for t in model.graph.initializer if "scale" in t.name)


def _cosine(reference: Path, candidate: Path) -> float:
    x = np.random.default_rng(1).normal(0, 1, (8, STEPS, FEATURES)).astype(np.float32)
    a, b = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].ravel()
        for path in (reference, candidate)
    )
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_lstm_weights_get_one_scale_per_channel_by_default(lstm_onnx: Path, tmp_path: Path) -> None:
    default = _quantize(lstm_onnx, tmp_path / "default")
    per_tensor = _quantize(lstm_onnx, tmp_path / "tensor", per_channel=False)
    assert "DynamicQuantizeLSTM" in {node.op_type for node in onnx.load(str(default)).graph.node}
    assert _largest_scale(default) == 4 * HIDDEN
    assert _largest_scale(per_tensor) == 1
    assert _cosine(lstm_onnx, default) > _cosine(lstm_onnx, per_tensor)


def test_models_without_lstm_stay_per_tensor_by_default(mlp_onnx: Path, tmp_path: Path) -> None:
    assert _largest_scale(_quantize(mlp_onnx, tmp_path / "mlp")) == 1
