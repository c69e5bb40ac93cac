"""prune.structured through Slice: each output takes a channel range of its input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from tests.worker.test_prune_detectors import channels, prune


def _halves_multiplied() -> onnx.ModelProto:
    """A conv's channels sliced into halves (the second with an open end), multiplied, then a conv."""
    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((16, 1, 3, 3)), "w2": rng.standard_normal((4, 8, 1, 1))}
    bounds = {"zero": [0], "eight": [8], "end": [2**62], "axis": [1]}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="first", pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["c", "zero", "eight", "axis"], ["low"], name="low"),
        helper.make_node("Slice", ["c", "eight", "end", "axis"], ["high"], name="high"),
        helper.make_node("Mul", ["low", "high"], ["gated"]),
        helper.make_node("Conv", ["gated", "w2"], ["y"], name="second"),
    ]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in bounds.items()]
    body = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4, "h", "w"])],
        inits,
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_channel_slices_prune_both_ranges_together(tmp_path: Path) -> None:
    """Slices of one conv's channels, paired by a Mul: channel i of each half goes with the other's i."""
    onnx.save(_halves_multiplied(), str(tmp_path / "halves.onnx"))
    outcome = prune(tmp_path / "halves.onnx", tmp_path / "out.onnx", sparsity=0.5, round_to=2)
    assert channels(outcome)["first"] == (16, 8)
    assert [k["node"] for k in outcome.metrics["kept_whole"]] == ["y"]
    x = np.random.default_rng(1).standard_normal((3, 1, 9, 9)).astype(np.float32)
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"x": x})[0].shape == (3, 4, 9, 9)
