"""Exported nodes back in the forms the original used, where onnxruntime's fusions depend on them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

# How a Pad with a zero fill states it: no third input, an empty third input, or a zero constant.
ABSENT, EMPTY, EXPLICIT = "absent", "empty", "explicit"


def original_pad_form(pad_inputs: Iterable[Sequence[str]]) -> str:
    """The form the original's Pads share; the exporter's own (empty) when they differ or there are none.

    onnxruntime fuses a Pad into the next Conv when its fill is absent or a zero constant and not
    when it is '' (an empty input); the fused Conv may lose the blocked-layout kernels (a pitch CNN
    ran 2x slower), so the round trip keeps whichever form the original had.
    """
    forms = {ABSENT if len(inputs) < 3 else EMPTY if inputs[2] == "" else EXPLICIT for inputs in pad_inputs}
    return forms.pop() if len(forms) == 1 else EMPTY


def restore_pad_forms(model: onnx.ModelProto, form: str) -> int:
    """Write every constant-mode, zero-fill Pad in `form`; return how many Pads changed."""
    if form == EXPLICIT:
        return 0
    constants = _constant_values(model.graph)
    dropped: set[str] = set()
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Pad" or _mode(node) != "constant":
            continue
        fill = node.input[2] if len(node.input) > 2 else ""
        if fill and not _is_zero(constants.get(fill)):
            continue
        axes = list(node.input[3:])
        wanted = [*node.input[:2], *([""] if form == EMPTY or any(axes) else []), *axes]
        if list(node.input) != wanted:
            del node.input[:]
            node.input.extend(wanted)
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
