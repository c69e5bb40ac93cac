"""export.torch on graphs that compute shapes at run time (Shape → Gather → Concat → Reshape, grid Ranges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from engine.contract import StepContext
from engine.techniques.export import torch as export_torch
from service.catalog.export_torch import TorchExportParams


def _const(name: str, values: list[int] | list[float], dtype: type = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype), name)


def _flattening_classifier(path: Path) -> Path:
    """Conv, pooling, a head reshaped to [Shape(x)[0], -1] and a computed half-width Slice."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Shape", ["p"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "bias"], ["logits"], transB=1),
        # Half the channels, computed: Shape(logits)[1:2] / 2 as the Slice end (integer Div).
        helper.make_node("Shape", ["logits"], ["logit_shape"], start=1),
        helper.make_node("Div", ["logit_shape", "two"], ["half"]),
        helper.make_node("Slice", ["logits", "zero1", "half", "one1"], ["first_half"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, "height", "width"])],
        [helper.make_tensor_value_info("first_half", TensorProto.FLOAT, ["batch", 3])],
        [
            numpy_helper.from_array(rng.standard_normal((8, 2, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal((6, 8)).astype(np.float32), "fc"),
            numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "bias"),
            _const("zero", 0),
            _const("axes0", [0]),
            _const("minus_one", [-1]),
            _const("two", [2]),
            _const("zero1", [0]),
            _const("one1", [1]),
        ],  # fmt: skip
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def _grid_decoder(path: Path) -> Path:
    """A YOLO-style anchor grid: Range over the feature map's height and width as floats, added to it."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "two"], ["h"], axis=0),
        helper.make_node("Gather", ["shape", "three"], ["w"], axis=0),
        helper.make_node("Cast", ["h"], ["h_float"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["w"], ["w_float"], to=TensorProto.FLOAT),
        helper.make_node("Range", ["start", "h_float", "step"], ["rows"]),
        helper.make_node("Range", ["start", "w_float", "step"], ["columns"]),
        helper.make_node("Add", ["rows", "half"], ["row_centres"]),
        helper.make_node("Unsqueeze", ["row_centres", "axes1"], ["row_column"]),
        helper.make_node("Mul", ["row_column", "columns"], ["grid"]),
        helper.make_node("Add", ["x", "grid"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, "height", "width"])],
        [
            _const("two", 2),
            _const("three", 3),
            _const("axes1", [1]),
            _const("start", 0.0, np.float32),
            # `half` is also a method of nn.Module: the bridge must store it under another key.
            _const("step", 1.0, np.float32),
            _const("half", 0.5, np.float32),
        ],  # fmt: skip
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


@pytest.mark.parametrize("build", [_flattening_classifier, _grid_decoder], ids=["reshape-head", "grid"])
def test_run_time_shapes_export_with_every_dim_dynamic(tmp_path: Path, build: object) -> None:
    source = build(tmp_path / "model.onnx")  # type: ignore[operator]
    params = TorchExportParams(timing_budget_s=0.1, batch_sizes=[2])

    outcome = export_torch.run(source, tmp_path / "model.pt2", params, StepContext(workdir=tmp_path))

    assert outcome.metrics["dynamic_dims"] == {"x": [0, 2, 3]}, outcome.metrics
    assert outcome.metrics["bounded_dims"] == {}
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for shape in [(1, 2, 7, 9), (5, 2, 12, 4)]:  # sizes the export never saw
        x = rng.standard_normal(shape).astype(np.float32)
        expected = session.run(None, {"x": x})[0]
        with torch.no_grad():
            np.testing.assert_allclose(program(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_shape_lane_is_off_outside_the_export(tmp_path: Path) -> None:
    from engine.bridge import from_onnx
    from engine.bridge.export import runnable_inputs

    module = from_onnx(_flattening_classifier(tmp_path / "model.onnx")).eval()
    examples, _ = runnable_inputs(module)

    program = export_torch._export(module, examples)

    assert module.trace_shapes is False  # eager runs and the ONNX exporter read shapes as tensors
    x = torch.randn(3, 2, 5, 5)
    with torch.no_grad():
        np.testing.assert_allclose(program.module()(x).numpy(), module(x).numpy(), rtol=1e-5, atol=1e-6)


def _streaming_lstm(path: Path) -> Path:
    """silero-vad's streaming form: frames (n, 8) as one sequence of batch 1, h/c (1, 1, 4) in and out."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
        for name, shape in (("W", (1, 16, 8)), ("R", (1, 16, 4)), ("B", (1, 32)))
    ]
    state = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, 4]) for name in ("h", "c")]
    graph = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["frames", "axes1"], ["sequence"]),
            helper.make_node(
                "LSTM", ["sequence", "W", "R", "B", "", "h", "c"], ["Y", "hn", "cn"], hidden_size=4
            ),
            helper.make_node("ReduceMean", ["Y"], ["score"], keepdims=0),
        ],
        "stream",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["n", 8]), *state],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("hn", TensorProto.FLOAT, [1, 1, 4]),
            helper.make_tensor_value_info("cn", TensorProto.FLOAT, [1, 1, 4]),
        ],
        [*weights, _const("axes1", [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_batch_sizes_the_program_refuses_are_reported_and_the_traced_shape_timed(tmp_path: Path) -> None:
    """torch.export guards the frame count at the traced size: timing at batch 1 and 8 failed (generic)."""
    source = _streaming_lstm(tmp_path / "stream.onnx")
    params = TorchExportParams(timing_budget_s=0.1, batch_sizes=[1, 8])

    outcome = export_torch.run(source, tmp_path / "stream.pt2", params, StepContext(workdir=tmp_path))

    assert outcome.metrics["refused_batch_sizes"] == [1, 8]
    assert list(outcome.metrics["latency_ms"]) == ["2"]  # the example the program was traced with
    assert any("refuses inputs at batch 1, 8" in warning for warning in outcome.warnings)
    # A scalar output (one score a run) is compared as one value.
    assert outcome.metrics["fidelity_vs_torch_fp32"]["max_abs_error"] < 1e-5
