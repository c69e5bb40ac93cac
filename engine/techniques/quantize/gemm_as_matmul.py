"""Gemm nodes with a constant weight as MatMul (+ Add for the bias), so weight-only quantization reaches them.

MatMulNBits replaces MatMul only, and GPT-2-style exports write every projection as a Gemm (its
Conv1D is `addmm`): without this, weight-only quantization of such a model touched its output head
alone. Y = alpha·A·B' + beta·C becomes MatMul(A, alpha·B') and Add(·, beta·C), where B' is B or its
transpose; the MatMul keeps the Gemm's name, so `nodes_to_exclude` still names it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx


def rewrite_gemms(model: onnx.ModelProto, excluded: Collection[str] = ()) -> int:
    """Rewrite every eligible Gemm of the main graph in place; how many were rewritten."""
    from onnx import helper, numpy_helper

    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    replaced: set[str] = set()
    rewritten = 0
    for node in model.graph.node:
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        weight = constants.get(node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if (
            weight is None
            or node.name in excluded
            or attributes.get("transA", 0)
            or len(weight.dims) != 2
            or (bias is not None and bias not in constants and attributes.get("beta", 1.0) != 1.0)
        ):
            nodes.append(node)
            continue
        matrix = numpy_helper.to_array(weight)
        matrix = matrix.T if attributes.get("transB", 0) else matrix
        matrix = np.ascontiguousarray(matrix * np.asarray(attributes.get("alpha", 1.0), matrix.dtype))
        output = node.output[0]
        weight_name = f"{node.name or output}_weight_kn"
        model.graph.initializer.append(numpy_helper.from_array(matrix, weight_name))
        if bias is None:
            nodes.append(helper.make_node("MatMul", [node.input[0], weight_name], [output], name=node.name))
        else:
            bias_name = bias  # computed (an Identity of a shared bias, say): added as it is, beta being 1
            if bias in constants:
                offset = numpy_helper.to_array(constants[bias])
                offset = offset * np.asarray(attributes.get("beta", 1.0), offset.dtype)
                bias_name = f"{node.name or output}_bias"
                model.graph.initializer.append(
                    numpy_helper.from_array(np.ascontiguousarray(offset), bias_name)
                )
            product = f"{output}_product"
            nodes.append(helper.make_node("MatMul", [node.input[0], weight_name], [product], name=node.name))
            nodes.append(
                helper.make_node("Add", [product, bias_name], [output], name=f"{node.name or output}_bias")
            )
        replaced |= {node.input[1]} | ({bias} if bias is not None and bias in constants else set())
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        drop_unread_initializers(model, replaced)
    return rewritten


def drop_unread_initializers(model: onnx.ModelProto, candidates: set[str]) -> None:
    """Remove the initializers among `candidates` that nothing reads any more: no node at any depth
    (If/Loop bodies, local functions), no graph output or input (a tied weight stays)."""
    from engine.ingest.safety import iter_nodes

    read = {name for node in iter_nodes(model) for name in node.input}
    read |= {value.name for value in (*model.graph.output, *model.graph.input)}
    for tensor in [t for t in model.graph.initializer if t.name in candidates and t.name not in read]:
        model.graph.initializer.remove(tensor)
