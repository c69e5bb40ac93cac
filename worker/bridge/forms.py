"""Exported nodes back in the forms onnxruntime's fusions expect, where the exporter wrote others."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def restore_pad_forms(model: onnx.ModelProto) -> int:
    """Drop a constant Pad's explicit zero `constant_value` input; return how many Pads changed.

    The exporter writes F.pad's fill as an input even when it is the default zero; onnxruntime then
    fuses Pad into the next Conv differently and the re-exported model runs slower (issue 12).
    """
    constants = _constant_values(model.graph)
    dropped: set[str] = set()
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Pad" or len(node.input) < 3 or _mode(node) != "constant":
            continue
        fill = node.input[2]
        if fill and not _is_zero(constants.get(fill)):
            continue
        axes = list(node.input[3:])
        del node.input[2:]
        if any(axes):
            node.input.extend(["", *axes])  # an omitted input keeps its place when a later one follows
        dropped.add(fill)
        changed += 1
    _drop_unread(model.graph, dropped - {name for node in model.graph.node for name in node.input} - {""})
    return changed


def _mode(node: onnx.NodeProto) -> str:
    for attribute in node.attribute:
        if attribute.name == "mode":
            return attribute.s.decode()
    return "constant"


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _is_zero(value: np.ndarray | None) -> bool:
    return value is not None and value.size == 1 and float(value.reshape(-1)[0]) == 0.0


def _drop_unread(graph: onnx.GraphProto, names: set[str]) -> None:
    """Remove the fill constants no node reads any more."""
    names -= {value.name for value in graph.output}
    keep = [node for node in graph.node if node.op_type != "Constant" or node.output[0] not in names]
    del graph.node[:]
    graph.node.extend(keep)
    kept = [tensor for tensor in graph.initializer if tensor.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
