"""Shapes that real exports run at: evaluation and the bridge search free dims alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.bridge import from_onnx, to_onnx
from engine.contract import TechniqueError
from engine.evaluate.compare import compare_models
from engine.evaluate.inputs import fixed_batch, load_eval_data
from engine.evaluate.sessions import run_checked
from engine.example_shapes import EXAMPLE_SIZES, concrete_shapes
from engine.ingest.summary import signature
from tests.worker import detector_models

FAST = {"threads": 1, "time_budget_s": 0.2, "warmup_runs": 1, "min_runs": 3}


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The YOLOv8-like detector with batch 1 fixed and a symbolic height and width."""
    torch.manual_seed(0)
    yolo = detector_models.randomize_norms(detector_models.TinyYOLOv8())
    path = tmp_path_factory.mktemp("shapes") / "sized.onnx"
    return detector_models.export(yolo, (1, 3, 64, 64), path, ["output0"], {2: "height", 3: "width"})


def test_dims_sharing_a_name_share_a_size() -> None:
    specs = [("tokens", ["batch", "sequence"]), ("mask", ["batch", "sequence"]), ("image", [1, 3, None, -1])]
    assert concrete_shapes(specs, 2, 32) == [(2, 32), (2, 32), (1, 3, 32, 32)]


def test_evaluation_generates_inputs_the_detector_runs_at(sized: Path) -> None:
    """16 breaks the stride-32 neck; evaluation searches like the bridge instead of failing."""
    session = ort.InferenceSession(str(sized), providers=["CPUExecutionProvider"])
    described = signature(onnx.load(str(sized)))
    with pytest.raises(TechniqueError):
        run_checked(session, {"images": np.zeros((1, 3, EXAMPLE_SIZES[0], EXAMPLE_SIZES[0]), np.float32)})
    data = load_eval_data(described, None, probe=lambda arrays: run_checked(session, arrays))
    height = data.arrays["images"].shape[2]
    assert height > EXAMPLE_SIZES[0] and height % 32 == 0
    result = compare_models(
        str(sized), str(sized), signature=described, dataset_path=None, metric=None, batch_sizes=[1],
        max_accuracy_drop=None, **FAST,
    )  # fmt: skip
    assert result["delta"]["fidelity"]["cosine"] == pytest.approx(1.0)
    assert set(result["baseline"]["latency_ms"]) == {"1"}


def _minus_one_batch(tmp_path: Path) -> Path:
    """A small CNN whose batch dim is written as -1, as paddle2onnx writes free dims."""
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    path = tmp_path / "minus_one.onnx"
    torch.onnx.export(cnn.eval(), (torch.zeros(1, 3, 12, 12),), str(path), input_names=["x"],
                      output_names=["y"], dynamo=False)  # fmt: skip
    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = -1
    onnx.save(model, str(path))
    return path


def test_a_minus_one_dim_is_free_not_a_size(tmp_path: Path) -> None:
    """Bridged and re-exported, the -1 batch stays free; evaluation sees no fixed batch."""
    path = _minus_one_batch(tmp_path)
    described: dict[str, Any] = signature(onnx.load(str(path)))
    assert fixed_batch(described) is None
    exported = to_onnx(from_onnx(path), tmp_path / "again.onnx")
    x = np.random.default_rng(0).standard_normal((5, 3, 12, 12)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(exported)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def _batch_on_axis_one(tmp_path: Path) -> Path:
    """silero-vad's shape: frames (batch, 4) and an LSTM-like state (2, batch, 3) summed into them."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["state", "axis0"], ["summed"], keepdims=0),
            helper.make_node("Concat", ["frames", "summed"], ["out"], axis=1),
        ],
        "stateful",
        [
            helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 3]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 7])],
        [numpy_helper.from_array(np.array([0], np.int64), "axis0")],
    )
    path = tmp_path / "stateful.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_a_batch_off_the_first_axis_is_named_when_the_model_cannot_run(tmp_path: Path) -> None:
    path = _batch_on_axis_one(tmp_path)
    with pytest.raises(TechniqueError) as raised:
        compare_models(
            str(path), str(path), signature=signature(onnx.load(str(path))), dataset_path=None, metric=None,
            batch_sizes=[1], max_accuracy_drop=None, **FAST,
        )  # fmt: skip
    assert raised.value.slug == "model-not-runnable"
    assert (
        "the batch dim 'batch' sits on another axis than the first in state (axis 1 of [2, 'batch', 3])"
        in (raised.value.problem.detail)
    )
