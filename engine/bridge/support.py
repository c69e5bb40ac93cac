"""Which ONNX graphs the bridge can run: every problem is listed at once, before anything runs."""

from __future__ import annotations

from typing import Any

import onnx
from onnx import helper, numpy_helper

from engine.bridge.registry import HANDLERS, VALIDATORS
from engine.contract import TechniqueError
from service.failures import UnsupportedOps

STANDARD_DOMAINS = ("", "ai.onnx")


def opset_of(model: onnx.ModelProto) -> int:
    """The model's default-domain opset."""
    return next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 1)


def node_name(node: onnx.NodeProto, index: int) -> str:
    """A node's name, or a stable one made from its position when the exporter left it empty."""
    return node.name or f"{node.op_type}_{index}"


def attributes(node: onnx.NodeProto, opset: int) -> dict[str, Any]:
    """A node's attributes as Python values (tensors as numpy), plus its op type and the opset."""
    attrs: dict[str, Any] = {"_op": node.op_type, "_opset": opset}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        attrs[attribute.name] = value
    return attrs


def _problem(node: onnx.NodeProto, opset: int) -> tuple[str, str | None] | None:
    """(op type, reason it is unsupported when the type alone is not the reason), or None if fine."""
    if node.domain not in STANDARD_DOMAINS:
        return f"{node.domain}.{node.op_type}", None
    if node.op_type == "Constant":
        kinds = {a.name for a in node.attribute}
        supported = kinds & {"value", "value_float", "value_floats", "value_int", "value_ints"}
        return None if supported else ("Constant", "sparse or string value")
    if node.op_type not in HANDLERS:
        return node.op_type, None
    check = VALIDATORS.get(node.op_type)
    # Some settings are inputs (LSTM peepholes, sequence lengths): the check sees which are given.
    reason = check({**attributes(node, opset), "_inputs": list(node.input)}) if check else None
    return (node.op_type, reason) if reason else None


def check_supported(model: onnx.ModelProto) -> None:
    """Raise `unsupported-ops` naming every op type (and op setting) the bridge cannot run."""
    opset = opset_of(model)
    found = [p for node in model.graph.node if (p := _problem(node, opset)) is not None]
    if not found:
        return
    ops = sorted({op_type for op_type, _ in found})
    reasons = sorted({reason for _, reason in found if reason})
    detail = f"the model uses ops the ONNX-to-torch bridge does not support: {', '.join(ops)}"
    raise TechniqueError(UnsupportedOps, detail + (f" ({'; '.join(reasons)})" if reasons else ""), ops=ops)
