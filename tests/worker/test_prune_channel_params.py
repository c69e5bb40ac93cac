"""prune.structured slices every per-channel parameter that follows a pruned layer: instance, batch and
group norms (whole groups go), per-channel scales and shifts, through squeeze and unsqueeze."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper

from tests.worker import bridge_models
from tests.worker.prune_outcomes import channels, conv_model, prune, weights


def _scaled_graph() -> onnx.ModelProto:
    """Conv, InstanceNorm, a per-channel Mul and Add (constants of shape (C, 1, 1)), ReLU, Conv; batch 1."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.standard_normal((16, 3, 3, 3)),
        "gamma": rng.random(16) + 0.5,
        "beta": rng.standard_normal(16),
        "scale": rng.random((16, 1, 1)) + 0.5,
        "shift": rng.standard_normal((16, 1, 1)),
        "w2": rng.standard_normal((4, 16, 1, 1)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="first", pads=[1, 1, 1, 1]),
        helper.make_node("InstanceNormalization", ["c", "gamma", "beta"], ["n"], name="norm"),
        helper.make_node("Mul", ["n", "scale"], ["m"], name="scale"),
        helper.make_node("Add", ["m", "shift"], ["a"], name="shift"),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="second"),
    ]
    body = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in params.items()],
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_instance_norm_and_per_channel_scales_are_sliced(tmp_path: Path) -> None:
    """Scale, shift and instance-norm parameters lose the pruned channels' entries; nothing is kept whole."""
    onnx.save(_scaled_graph(), str(tmp_path / "scaled.onnx"))
    outcome = prune(tmp_path / "scaled.onnx", tmp_path / "out.onnx", sparsity=0.5)
    assert channels(outcome)["first"] == (16, 8)
    assert sorted(a.shape for a in weights(tmp_path / "out.onnx").values() if a.size == 8) == [
        (8,), (8,), (8, 1, 1), (8, 1, 1),
    ]  # fmt: skip
    assert [k["node"] for k in outcome.metrics["kept_whole"]] == ["y"]
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"x": x})[0].shape == (1, 4, 8, 8)


def _rankless_norm_graph() -> onnx.ModelProto:
    """Conv, a reshape to its own shape that shape inference cannot follow (as in paddle2onnx
    exports), BatchNormalization, ReLU, Conv: the batch norm stays a functional op in the bridge."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.standard_normal((16, 3, 3, 3)),
        "gamma": rng.random(16) + 0.5,
        "beta": rng.standard_normal(16),
        "mean": rng.standard_normal(16),
        "var": rng.random(16) + 0.5,
        "w2": rng.standard_normal((4, 16, 1, 1)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="first", pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Shape", ["s"], ["rank"]),
        helper.make_node("Slice", ["s", "zero", "rank"], ["whole"]),  # a length shape inference cannot tell
        helper.make_node("Reshape", ["c", "whole"], ["v"]),
        helper.make_node("BatchNormalization", ["v", "gamma", "beta", "mean", "var"], ["n"], name="norm"),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="second"),
    ]
    return conv_model(nodes, (["batch", 3, 8, 8], ["batch", 4, 8, 8]), params, {"zero": [0]})


def test_a_batch_norm_of_unknown_rank_is_sliced_like_a_layer(tmp_path: Path) -> None:
    """Its four per-channel constants lose the pruned channels' entries instead of keeping the group whole."""
    from engine.bridge import from_onnx

    model = _rankless_norm_graph()
    module = from_onnx(model)
    assert [module.layer_of(step) for step in module.steps if step.op == "BatchNormalization"] == [None]
    onnx.save(model, str(tmp_path / "rankless.onnx"))
    outcome = prune(tmp_path / "rankless.onnx", tmp_path / "out.onnx", sparsity=0.5)
    assert channels(outcome)["first"] == (16, 8)
    assert [k["node"] for k in outcome.metrics["kept_whole"]] == ["y"]
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"x": x})[0].shape == (3, 4, 8, 8)


def test_squeeze_and_unsqueeze_of_other_axes_carry_the_channels(tmp_path: Path) -> None:
    """A 1-D conv written as Conv2d over (length, 1), squeezed to (N, C, L) and back, prunes through."""
    rng = np.random.default_rng(0)
    params = {"w1": rng.standard_normal((16, 3, 3, 1)), "w2": rng.standard_normal((4, 16, 1, 1))}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="first", pads=[1, 0, 1, 0]),
        helper.make_node("Squeeze", ["c", "last"], ["s"], name="squeeze"),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "last"], ["u"], name="unsqueeze"),
        helper.make_node("Conv", ["u", "w2"], ["y"], name="second"),
    ]
    model = conv_model(nodes, (["batch", 3, 20, 1], ["batch", 4, 20, 1]), params, {"last": [3]})
    onnx.save(model, str(tmp_path / "m.onnx"))
    outcome = prune(tmp_path / "m.onnx", tmp_path / "out.onnx", sparsity=0.5)
    assert channels(outcome)["first"] == (16, 8)
    assert [k["node"] for k in outcome.metrics["kept_whole"]] == ["y"]
    x = np.random.default_rng(1).standard_normal((2, 3, 20, 1)).astype(np.float32)
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"x": x})[0].shape == (2, 4, 20, 1)


class GroupNormCNN(torch.nn.Module):
    """A conv, GroupNorm over 4 groups (exported as reshape, instance norm, reshape, scale, shift), a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.norm = torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.GroupNorm(4, 16)
        self.second = torch.nn.Conv2d(16, 10, 1)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.norm(self.first(x)))).mean((2, 3))


def test_group_norm_loses_whole_groups(tmp_path: Path) -> None:
    """Channels normalized together go together: half the groups, with their scale and shift entries."""
    torch.manual_seed(0)
    source = bridge_models.export(GroupNormCNN().eval(), tmp_path / "gn.onnx")
    outcome = prune(source, tmp_path / "out.onnx", sparsity=0.5)
    assert channels(outcome)["/first/Conv"] == (16, 8)
    assert [k["node"] for k in outcome.metrics["kept_whole"]] == ["scores"]
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"pixels": x})[0].shape == (5, 10)
