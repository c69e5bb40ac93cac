"""ONNX element types as torch dtypes."""

from __future__ import annotations

import torch
from onnx import TensorProto

TORCH_DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.UINT8: torch.uint8,
    TensorProto.BOOL: torch.bool,
}


def torch_dtype(elem_type: int) -> torch.dtype:
    """The torch dtype of an ONNX element type; ValueError for types torch cannot hold."""
    try:
        return TORCH_DTYPES[elem_type]
    except KeyError:
        raise ValueError(f"element type {TensorProto.DataType.Name(elem_type)} is not supported") from None
