"""What kind of reduced-precision model a candidate is, read from its operators and weight types."""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from engine.evaluate.parameters import iter_graphs

DYNAMIC_INT8 = "dynamic int8"
STATIC_INT8 = "static int8"
WEIGHT_ONLY = "weight-only int"
BLOCK_WEIGHTS = "block-wise weight-only int4/int8"
FLOAT16 = "float16"

_DYNAMIC_OPS = {
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "DynamicQuantizeLSTM",
}
_HALF_TYPES = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def precision_kind(model: onnx.ModelProto, ops: Mapping[str, int]) -> str | None:
    """dynamic or static int8, block-wise or other weight-only int, float16, or None for full precision."""
    if _DYNAMIC_OPS.intersection(ops):
        return DYNAMIC_INT8
    if "QuantizeLinear" in ops or any(op.startswith("QLinear") for op in ops):
        return STATIC_INT8
    if "MatMulNBits" in ops or "GatherBlockQuantized" in ops:
        return BLOCK_WEIGHTS
    if "DequantizeLinear" in ops:
        return WEIGHT_ONLY
    half = any(
        tensor.data_type in _HALF_TYPES for graph in iter_graphs(model.graph) for tensor in graph.initializer
    )
    return FLOAT16 if half else None
