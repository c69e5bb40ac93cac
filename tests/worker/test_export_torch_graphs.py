"""export.torch on graph forms converters write: empty constants (paddle2onnx's Resize roi)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from engine.contract import StepContext
from engine.techniques.export import torch as export_torch
from service.catalog.export_torch import TorchExportParams


def _upsampler(path: Path) -> Path:
    """Conv, then Resize x2 whose `roi` input is an empty constant tensor, as paddle2onnx exports it."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Resize", ["c", "roi", "scales"], ["y"], name="up", mode="nearest"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 12, 12])],
        [
            numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.array([], np.float32), "roi"),
            numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_an_empty_constant_does_not_stop_the_program_from_saving(tmp_path: Path) -> None:
    source = _upsampler(tmp_path / "up.onnx")
    params = TorchExportParams(timing_budget_s=0.1, batch_sizes=[2])

    export_torch.run(source, tmp_path / "up.pt2", params, StepContext(workdir=tmp_path))

    program = torch.export.load(str(tmp_path / "up.pt2")).module()
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6)).astype(np.float32)
    expected = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(program(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
