"""Which weights a LayerNorm's output reaches, through ops that keep its channels on the last axis."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

# Ops a scaled tensor may pass through: each keeps the last axis as the channel axis and is linear per
# channel, so a per-channel factor commutes with it. Shape reads only the shape, which scaling keeps.
PASS_THROUGH = {"Transpose", "ReduceMean", "ReduceSum"}
# ONNX's in-memory shape inference refuses models past 2 GiB.
_MAX_INFERENCE_BYTES = 1_900_000_000


@dataclass
class WeightUse:
    """A MatMul/Gemm reading the scaled tensor, its constant weight, and the weight's input-channel axis."""

    node: onnx.NodeProto
    weight: str
    axis: int


@dataclass
class ChannelPath:
    """The tensors from a LayerNorm's output to the weights it feeds."""

    tensors: list[str] = field(default_factory=list)
    uses: list[WeightUse] = field(default_factory=list)


class GraphIndex:
    """Initializers, constants, consumers and known ranks of one graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.constants = {
            node.output[0]: attribute.t
            for node in graph.node
            if node.op_type == "Constant"
            for attribute in node.attribute
            if attribute.name == "value"
        }
        self.outputs = {output.name for output in graph.output}
        infos = [*_inferred(model).value_info, *graph.value_info, *graph.input, *graph.output]
        self.ranks = {
            info.name: len(info.type.tensor_type.shape.dim)
            for info in infos
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape")
        }

    def readers(self, name: str) -> int:
        """How many nodes read the tensor."""
        return len(self.consumers.get(name, []))

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output, else None."""
        tensor = self.initializers.get(name, self.constants.get(name))
        return None if tensor is None else numpy_helper.to_array(tensor)


def _inferred(model: onnx.ModelProto) -> onnx.GraphProto:
    """The graph with ONNX's inferred shapes, or an empty graph when inference fails or the model is huge."""
    if model.ByteSize() > _MAX_INFERENCE_BYTES:
        return onnx.GraphProto()
    try:
        return onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # inference raises on graphs it does not understand; ranks then stay unknown
        return onnx.GraphProto()


def channel_path(index: GraphIndex, start: str) -> ChannelPath | None:
    """Where the tensor goes, or None when anything but a weight's input channel reads it."""
    path, frontier = ChannelPath(), [(start, index.ranks.get(start))]
    while frontier:
        tensor, rank = frontier.pop()
        if tensor in index.outputs:
            return None
        path.tensors.append(tensor)
        for node in index.consumers.get(tensor, []):
            if node.op_type == "Shape":
                continue
            if node.op_type in PASS_THROUGH:
                after = _rank_after(index, node, rank)
                if after is None:
                    return None
                frontier.append((node.output[0], after))
                continue
            use = _weight_use(index, node, tensor)
            if use is None:
                return None
            path.uses.append(use)
    return path if path.uses else None


def _rank_after(index: GraphIndex, node: onnx.NodeProto, rank: int | None) -> int | None:
    """The output rank when the node keeps the last axis last and untouched, else None."""
    attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
    if node.op_type == "Transpose":
        perm = list(attributes.get("perm", []))
        return len(perm) if perm and perm[-1] == len(perm) - 1 and rank in (None, len(perm)) else None
    axes = attributes.get("axes")
    if len(node.input) > 1 and node.input[1]:
        given = index.constant(node.input[1])
        axes = None if given is None else [int(axis) for axis in given.reshape(-1)]
    # No axes means every axis is reduced (or none, with noop_with_empty_axes): not followed.
    if rank is None or not axes or any(axis % rank == rank - 1 for axis in axes):
        return None
    return rank if attributes.get("keepdims", 1) else rank - len(axes)


def _weight_use(index: GraphIndex, node: onnx.NodeProto, tensor: str) -> WeightUse | None:
    """The node's weight and input-channel axis, when the tensor is its activation operand."""
    if len(node.input) < 2 or node.input[0] != tensor or node.input[1] not in index.initializers:
        return None
    weight = node.input[1]
    if index.readers(weight) != 1:
        return None  # a shared weight cannot be rescaled for one reader
    dims = len(index.initializers[weight].dims)
    if node.op_type == "MatMul" and dims >= 2:
        return WeightUse(node, weight, dims - 2)
    if node.op_type == "Gemm" and dims == 2:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("transA", 0):
            return None
        return WeightUse(node, weight, 1 if attributes.get("transB", 0) else 0)
    return None
