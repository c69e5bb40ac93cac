"""The ONNX <-> torch bridge: ONNX graphs as trainable torch modules, and back to ONNX.

Conv, ConvTranspose, Gemm / MatMul by a constant, BatchNormalization, LayerNormalization,
embedding Gathers, LSTM and GRU become real nn layers; every other node is a torch function run in topological
order.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from engine.bridge import (  # noqa: F401 - register ops
    ops_conv_transpose,
    ops_elementwise,
    ops_nn,
    ops_recurrent,
    ops_reduce,
    ops_resize,
    ops_shape,
)
from engine.bridge.export import example_inputs, to_onnx
from engine.bridge.graph import build_module
from engine.bridge.module import OnnxModule, Step, TensorSpec
from engine.bridge.support import check_supported


def from_onnx(model: onnx.ModelProto | Path) -> OnnxModule:
    """Load (if a path) and bridge an ONNX model; unsupported ops raise TechniqueError first."""
    proto = onnx.load(str(model)) if isinstance(model, Path) else model
    return build_module(proto)


__all__ = [
    "OnnxModule",
    "Step",
    "TensorSpec",
    "check_supported",
    "example_inputs",
    "from_onnx",
    "to_onnx",
]
