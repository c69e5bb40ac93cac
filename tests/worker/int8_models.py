"""Models for the int8 rule tests: a tiny encoder, outlier channels, hand-built LayerNorm graphs."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OUTLIER_FACTOR = 100.0
OUTLIER_CHANNELS = [1, 7]
# Where each LayerNorm of TinyEncoder's export sends its output: the weight reader and its input axis.
LAYERNORM_READERS = {
    "/encoder/norm1/LayerNormalization": ("/encoder/self_attn/MatMul", 0),
    "/encoder/norm2/LayerNormalization": ("/encoder/linear1/MatMul", 0),
    "/norm/LayerNormalization": ("/head/Gemm", 1),
}


class TinyEncoder(nn.Module):
    """One pre-norm transformer layer over the 8 image rows."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.encoder = nn.TransformerEncoderLayer(
            dim, 2, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(x.flatten(1, 2)))).mean(1))


def with_outliers(model: onnx.ModelProto) -> None:
    """Make a few channels of every LayerNorm 100x wider and the weight rows they feed 100x smaller."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes = {node.name: node for node in model.graph.node}
    for name, (reader, axis) in LAYERNORM_READERS.items():
        for parameter in nodes[name].input[1:3]:
            _scale(initializers[parameter], 0, OUTLIER_FACTOR)
        _scale(initializers[nodes[reader].input[1]], axis, 1.0 / OUTLIER_FACTOR)


def _scale(tensor: onnx.TensorProto, axis: int, factor: float) -> None:
    values = np.moveaxis(numpy_helper.to_array(tensor).copy(), axis, 0)
    values[OUTLIER_CHANNELS] *= factor
    tensor.CopyFrom(numpy_helper.from_array(np.moveaxis(values, 0, axis), tensor.name))


def layernorm_graph(reader: str) -> onnx.ModelProto:
    """x (1, 4, 8) -> LayerNorm with an outlier channel -> MatMul(w), then `reader` also reads the LN."""
    gamma = np.ones(8, np.float32)
    gamma[3] = 100.0
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], "ln", axis=-1),
        helper.make_node("MatMul", ["ln", "w"], ["y"], "matmul"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3])]
    if reader == "residual":
        nodes.append(helper.make_node("Add", ["ln", "x"], ["z"], "residual"))
    elif reader == "shared weight":
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["z"], "other"))
    elif reader == "reduce over channels":
        nodes.append(helper.make_node("ReduceMean", ["ln"], ["z"], "mean", axes=[-1], keepdims=1))
    if reader != "none":
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    initializers = [
        numpy_helper.from_array(gamma, "gamma"),
        numpy_helper.from_array(np.zeros(8, np.float32), "beta"),
        numpy_helper.from_array(np.ones((8, 3), np.float32), "w"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
