"""Counting a model's parameters so that a quantized model reports the same count as its original.

The rule, applied to every initializer of the main graph and of its subgraphs:

- A float initializer (any float width) is a parameter, unless a quantization op uses it as a scale.
- An integer initializer is a parameter only when a quantization op consumes it as quantized data
  (the weight of MatMulInteger or ConvInteger, the input of DequantizeLinear, the int32 bias of
  QLinearConv, the int8 table of a Gather, ...). Shapes, axes and indices are not parameters.
- Scales and zero points are never parameters: they describe how a weight is stored, not how many
  weights there are. Each element of a quantized weight is counted once, like the float element it
  replaces, so `quantize.dynamic` keeps the parameter count of its input.

A parameter is non-zero when it differs from zero, or, for a quantized weight, from its zero point
(a pruned weight quantized with a non-zero zero point stores the zero point, not 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

# Quantized data inputs of each quantization op, mapped to the index of their zero point (None
# for int32 biases, which have none). Every other initializer input of these ops, and of any other
# QLinear* op, is a scale or a zero point.
_DATA_INPUTS: dict[str, dict[int, int | None]] = {
    "QuantizeLinear": {},
    "DequantizeLinear": {0: 2},
    "MatMulInteger": {0: 2, 1: 3},
    "ConvInteger": {0: 2, 1: 3},
    "QLinearMatMul": {0: 2, 3: 5},
    "QLinearConv": {0: 2, 3: 5, 8: None},
    "DynamicQuantizeMatMul": {1: 3, 4: None},
    "MatMulIntegerToFloat": {0: 4, 1: 5, 6: None},
    "QGemm": {0: 2, 3: 5, 6: None},
    "QAttention": {1: 7, 2: None},
    "DynamicQuantizeLSTM": {1: 9, 2: 11},
}
# Where a per-channel zero point lies when the weight's shape alone is ambiguous.
_PER_CHANNEL_AXIS = {"ConvInteger": 0, "QLinearConv": 0, "DequantizeLinear": 1}
_NARROW_INTS = {
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT4,
    onnx.TensorProto.UINT4,
}
_FLOATS = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.FLOAT8E4M3FN,
    onnx.TensorProto.FLOAT8E4M3FNUZ,
    onnx.TensorProto.FLOAT8E5M2,
    onnx.TensorProto.FLOAT8E5M2FNUZ,
}


@dataclass(frozen=True)
class ParameterCount:
    """Parameters and how many of them are not zero."""

    parameters: int
    nonzero: int


@dataclass(frozen=True)
class _Use:
    node: onnx.NodeProto
    index: int


@dataclass(frozen=True)
class ParameterTensor:
    """One initializer that holds parameters: its name, shape and how many of them are not zero."""

    name: str
    shape: tuple[int, ...]
    nonzero: int

    @property
    def size(self) -> int:
        """Number of parameters in the tensor."""
        return math.prod(self.shape)


def count_parameters(model: onnx.ModelProto) -> ParameterCount:
    """Count parameters by the module's rule; external data must already be loaded."""
    tensors = list(parameter_tensors(model))
    return ParameterCount(sum(t.size for t in tensors), sum(t.nonzero for t in tensors))


def parameter_tensors(model: onnx.ModelProto) -> Iterator[ParameterTensor]:
    """Every initializer that counts as parameters under the module's rule, subgraphs included."""
    for graph in iter_graphs(model.graph):
        initializers = {tensor.name: tensor for tensor in graph.initializer}
        uses = _uses(graph, set(initializers))
        scale_names = _dynamic_scales(graph, set(initializers))
        for name, tensor in initializers.items():
            zero_point = _parameter_zero_point(tensor, uses.get(name, []), name in scale_names)
            if zero_point is None:
                continue
            values = numpy_helper.to_array(tensor)
            yield ParameterTensor(name, tuple(values.shape), _count_nonzero(values, zero_point, initializers))


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph nested in its nodes' attributes."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from iter_graphs(subgraph)


def _uses(graph: onnx.GraphProto, names: set[str]) -> dict[str, list[_Use]]:
    uses: dict[str, list[_Use]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in names:
                uses.setdefault(name, []).append(_Use(node, index))
    return uses


def _dynamic_scales(graph: onnx.GraphProto, names: set[str]) -> set[str]:
    """Weight scales of onnxruntime's dynamic pattern: Mul(activation scale, weight scale)."""
    runtime_scales = {node.output[1] for node in graph.node if node.op_type == "DynamicQuantizeLinear"}
    scales: set[str] = set()
    for node in graph.node:
        if node.op_type == "Mul" and any(name in runtime_scales for name in node.input):
            scales.update(name for name in node.input if name in names)
    return scales


def _parameter_zero_point(tensor: onnx.TensorProto, uses: list[_Use], is_scale: bool) -> _Use | bool | None:
    """None when not a parameter; else the use that names its zero point, or True when it has none."""
    if is_scale or any(_is_metadata(use) for use in uses):
        return None
    if tensor.data_type in _FLOATS:
        return True
    for use in uses:
        data = _DATA_INPUTS.get(use.node.op_type, {})
        if use.index in data:
            return True if data[use.index] is None else use
        if use.node.op_type == "Gather" and use.index == 0 and tensor.data_type in _NARROW_INTS:
            return True
    return None


def _is_metadata(use: _Use) -> bool:
    """True when the input is a scale or zero point of a quantization op."""
    op_type = use.node.op_type
    if op_type in _DATA_INPUTS:
        return use.index not in _DATA_INPUTS[op_type]
    return op_type.startswith("QLinear")


def _count_nonzero(
    values: np.ndarray, zero_point: _Use | bool, initializers: dict[str, onnx.TensorProto]
) -> int:
    if isinstance(zero_point, bool):
        return int(np.count_nonzero(values))
    node = zero_point.node
    position = _DATA_INPUTS[node.op_type][zero_point.index]
    if position is None or position >= len(node.input) or node.input[position] not in initializers:
        return int(np.count_nonzero(values))
    zero = numpy_helper.to_array(initializers[node.input[position]]).astype(np.int64)
    if zero.size > 1:
        axis = _channel_axis(node, values.shape, zero.size)
        if axis is None:
            return int(np.count_nonzero(values))
        shape = [1] * values.ndim
        shape[axis] = zero.size
        zero = zero.reshape(shape)
    return int(np.count_nonzero(values.astype(np.int64) != zero))


def _channel_axis(node: onnx.NodeProto, shape: tuple[int, ...], channels: int) -> int | None:
    """The axis a per-channel zero point runs along: the op's own axis when it fits, else the last."""
    preferred = _PER_CHANNEL_AXIS.get(node.op_type, len(shape) - 1)
    for attribute in node.attribute:
        if attribute.name == "axis":
            preferred = attribute.i
    fitting = [axis for axis in range(len(shape)) if shape[axis] == channels]
    if not fitting:
        return None
    return preferred % len(shape) if preferred % len(shape) in fitting else fitting[-1]
