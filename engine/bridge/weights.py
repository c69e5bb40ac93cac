"""The weight initializers of Conv, Gemm and MatMul nodes, for techniques that edit ONNX directly."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from engine.bridge.support import attributes, node_name
from engine.contract import TechniqueError
from service.failures import NothingToPrune


@dataclass(frozen=True)
class Weight:
    """One node's weight initializer and the axis of it that the node sums over (input channels)."""

    node: str
    op_type: str
    initializer: str
    reduction_axis: int


def _weight_input(node: onnx.NodeProto, arrays: dict[str, np.ndarray]) -> tuple[str, int] | None:
    """(initializer name, reduction axis) of the node's weight, or None when it has no constant one."""
    # `arrays` also holds the names of Identity outputs that pass an initializer on (_constants).
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in arrays:
        return node.input[1], 1
    if node.op_type == "Gemm" and len(node.input) > 1 and node.input[1] in arrays:
        trans_b = attributes(node, 0).get("transB", 0)
        return node.input[1], 1 if trans_b else 0
    if node.op_type == "MatMul":
        if node.input[1] in arrays and node.input[0] not in arrays:
            return node.input[1], max(arrays[node.input[1]].ndim - 2, 0)
        if node.input[0] in arrays and node.input[1] not in arrays:
            return node.input[0], arrays[node.input[0]].ndim - 1
    return None


def _constants(model: onnx.ModelProto) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Float initializers by name (also as Identity outputs), and the initializer each name stands for."""
    # The exporter stores equal weights once and feeds the other readers through an Identity.
    arrays = {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
    }
    source = {name: name for name in arrays}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in source:
            source[node.output[0]] = source[node.input[0]]
            arrays[node.output[0]] = arrays[node.input[0]]
    return arrays, source


def prunable_weights(
    model: onnx.ModelProto,
    op_types: Collection[str],
    include: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> list[Weight]:
    """Float weights of the selected nodes, in graph order (a shared initializer appears once per node)."""
    arrays, source = _constants(model)
    found = []
    for index, node in enumerate(model.graph.node):
        name = node_name(node, index)
        if node.op_type not in op_types or name in exclude or (include is not None and name not in include):
            continue
        weight = _weight_input(node, arrays)
        if weight is not None:
            found.append(Weight(name, node.op_type, source[weight[0]], weight[1]))
    return found


def select_weights(
    model: onnx.ModelProto,
    op_types: Collection[str],
    include: Collection[str] | None,
    exclude: Collection[str],
) -> tuple[list[Weight], list[str]]:
    """The selected weights, and warnings naming selected nodes that the model does not have."""
    weights = prunable_weights(model, op_types, include, exclude)
    if not weights:
        detail = f"no {'/'.join(op_types)} node with a constant weight matches the selection"
        raise TechniqueError(NothingToPrune, detail)
    known = {node_name(node, i) for i, node in enumerate(model.graph.node)}
    unknown = sorted((set(include or ()) - known) | (set(exclude) - known))
    return weights, [f"node names not in the model: {', '.join(unknown)}"] if unknown else []


def initializer_arrays(model: onnx.ModelProto, names: Collection[str]) -> dict[str, np.ndarray]:
    """The named initializers as (writable) numpy arrays."""
    return {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer if i.name in names}


def replace_initializers(model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> None:
    """Overwrite initializers in place with new values of the same name and dtype."""
    for init in model.graph.initializer:
        if init.name in arrays:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
            init.CopyFrom(numpy_helper.from_array(arrays[init.name].astype(dtype), init.name))
