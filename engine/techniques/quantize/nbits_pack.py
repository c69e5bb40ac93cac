"""MatMulNBits nodes from integers already chosen (GPTQ's), in onnxruntime's contrib-op layout.

B is uint8 [N, blocks, block_size * bits / 8] (two 4-bit values per byte, the even index in the low
nibble), scales [N * blocks], zero points [N * ceil(blocks * bits / 8)] packed per column; a node
without zero points implies 2^(bits-1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

    from engine.techniques.quantize.block_grid import Quantized


def _nibbles(values: np.ndarray) -> np.ndarray:
    """Pairs of 4-bit values along the last axis, the even one in the low nibble."""
    if values.shape[-1] % 2:
        values = np.concatenate([values, np.zeros((*values.shape[:-1], 1), np.uint8)], axis=-1)
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


def pack_columns(values: np.ndarray, bits: int) -> np.ndarray:
    """Zero points [N, blocks] as MatMulNBits stores them: each column's packed into whole bytes."""
    return _nibbles(values) if bits == 4 else values.astype(np.uint8)


def matmul_nbits(
    node: onnx.NodeProto,
    weight: Quantized,
    bits: int,
    block_size: int,
    symmetric: bool,
    accuracy_level: int,
) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """The MatMulNBits node replacing MatMul `node`, and its initializers."""
    from onnx import helper, numpy_helper

    rows, columns = weight.q.shape
    blocks = weight.scale.shape[0]
    padded = np.full((blocks * block_size, columns), 0, np.uint8)
    padded[:rows] = weight.q
    padded[rows:] = weight.zero[-1]  # padding rows quantize to zero
    per_column = padded.T.reshape(columns, blocks, block_size)  # [N, blocks, block_size]
    packed = _nibbles(per_column) if bits == 4 else per_column
    base = node.output[0]  # unique, where two MatMuls may share one weight
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(packed), f"{base}_Q{bits}G{block_size}"),
        numpy_helper.from_array(np.ascontiguousarray(weight.scale.T.reshape(-1)), f"{base}_scales"),
    ]
    if not symmetric:
        packed_zeros = pack_columns(weight.zero.T, bits)  # from [N, blocks]
        initializers.append(
            numpy_helper.from_array(np.ascontiguousarray(packed_zeros.reshape(-1)), f"{base}_zp")
        )
    replacement = helper.make_node(
        "MatMulNBits",
        [node.input[0], *(tensor.name for tensor in initializers)],
        list(node.output),
        name=f"{node.name}_Q{bits}" if node.name else "",
        domain="com.microsoft",
        K=rows,
        N=columns,
        bits=bits,
        block_size=block_size,
        accuracy_level=accuracy_level,
    )
    return replacement, initializers
