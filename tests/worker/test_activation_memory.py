"""Calibration batches bounded by activation memory: the estimate, the bound, and unchanged ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.contract import StepContext
from engine.techniques.quantize import static as quantize_static
from engine.techniques.quantize.int8.activation_memory import (
    activation_budget,
    bytes_per_sample,
    calibration_batch,
)
from service.catalog.quantize_static import StaticQuantParams


def _conv_net(channels: int) -> onnx.ModelProto:
    """x (N, 3, H, W) -> Conv(3->channels, 3x3, pad 1) -> Relu -> ReduceMean over H, W: y (N, channels)."""
    weight = numpy_helper.from_array(np.ones((channels, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
            helper.make_node("ReduceMean", ["relu"], ["y"], axes=[2, 3], keepdims=0, name="mean"),
        ],
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", channels])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_one_sample_counts_every_computed_tensor() -> None:
    """Conv and Relu outputs (channels x H x W floats each) plus the pooled output."""
    per_sample = bytes_per_sample(_conv_net(8), {"x": (3, 20, 30)})
    assert per_sample == 4 * (8 * 20 * 30 * 2 + 8)


def test_large_activations_lower_the_batch_and_small_ones_keep_it() -> None:
    """An image model at 2048 x 2048 gets fewer samples per batch; at 32 x 32 the requested batch."""
    model = _conv_net(16)
    large = bytes_per_sample(model, {"x": (3, 2048, 2048)})
    assert large is not None and large > activation_budget() // 32
    lowered = calibration_batch(model, {"x": (3, 2048, 2048)}, 32)
    assert 1 <= lowered < 32 and lowered * large <= activation_budget()
    assert calibration_batch(model, {"x": (3, 32, 32)}, 32) == 32


def test_unknown_inputs_keep_the_requested_batch() -> None:
    """Without the dataset's shapes nothing is known: the caller's batch stands."""
    assert calibration_batch(_conv_net(4), {}, 7) == 7


def test_calibrated_ranges_do_not_depend_on_the_batch(
    cnn_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    """MinMax ranges from one-sample batches equal those from 32-sample batches: lowering is safe."""
    scales = []
    for batch in (1, 32):
        work = tmp_path / f"work-{batch}"
        work.mkdir()
        output = tmp_path / f"int8-{batch}.onnx"
        outcome = quantize_static.run(
            cnn_onnx,
            output,
            StaticQuantParams(dataset_id="d", calibration_batch_size=batch),
            StepContext(workdir=work, datasets={"d": digits_npz}),
        )
        assert outcome.metrics["calibration_batch_size"] == batch
        model = onnx.load(str(output))
        scales.append(
            {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_scale")}
        )
    assert scales[0].keys() == scales[1].keys() and scales[0]
    for name, value in scales[0].items():
        np.testing.assert_allclose(value, scales[1][name], rtol=1e-6)
