"""Float zero points on onnxruntime's int4 kernels: integer zero points plus a float offset per block.

MatMulNBits' fast CPU path takes integer zero points only; float ones (HQQ's, or a block's exact
minimum as GGUF's Q4_1 keeps it) drop it to a path slower than the float model (SmolLM2-135M decoded
at 0.18×, bench/WEIGHT_ONLY.md). A block's weight (q - z)·s + o, with z an integer zero point and o
the float remainder, gives x·W = MatMulNBits(x) + Σ_b (Σ_{k in b} x_k)·o[b]: the input's block sums
(a MatMul by a 0/1 matrix [K, blocks], shared by the nodes reading one input) times the offsets
[blocks, N], 1/block_size of the original multiply-adds, in float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

# Names of the nodes an offset term adds, after the MatMulNBits node's output name.
BLOCK_SUMS_SUFFIX, OFFSET_SUFFIX = "_block_sums", "_with_offset"


@dataclass(frozen=True)
class BlockOffsets:
    """The float offsets [blocks, N] a MatMulNBits node's output misses, per block of its K inputs."""

    offsets: np.ndarray
    block_size: int


def split_zero_points(zero_points: np.ndarray, scales: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer zero points and float offsets [blocks, N] for float zero points and scales [N, blocks]."""
    integers = np.clip(np.round(zero_points), 0, top)
    # (q - zp)·s = (q - z)·s + (z - zp)·s
    offsets = ((integers - zero_points) * scales).T
    return integers.astype(np.uint8), offsets


def integer_zero_points(model: onnx.ModelProto) -> dict[str, BlockOffsets]:
    """Rewrite every MatMulNBits node's float zero points as integers; the offsets to add, by output."""
    from onnx import TensorProto, numpy_helper

    from engine.techniques.quantize.nbits_pack import pack_columns

    tensors = {tensor.name: tensor for tensor in model.graph.initializer}
    offsets: dict[str, BlockOffsets] = {}
    for node in model.graph.node:
        if node.op_type != "MatMulNBits" or len(node.input) < 4 or node.input[3] not in tensors:
            continue
        zero_tensor = tensors[node.input[3]]
        if zero_tensor.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
            continue
        attributes = {attribute.name: attribute.i for attribute in node.attribute}
        bits, block_size, columns = attributes["bits"], attributes["block_size"], attributes["N"]
        scales = numpy_helper.to_array(tensors[node.input[2]])
        zero_points = numpy_helper.to_array(zero_tensor).astype(np.float64).reshape(columns, -1)
        integers, block_offsets = split_zero_points(
            zero_points, scales.astype(np.float64).reshape(columns, -1), 2**bits - 1
        )
        packed = pack_columns(integers, bits)
        zero_tensor.CopyFrom(numpy_helper.from_array(packed.reshape(-1), zero_tensor.name))
        # The offset term computes in the model's float type, which the scales carry.
        offsets[node.output[0]] = BlockOffsets(block_offsets.astype(scales.dtype), block_size)
    return offsets


def add_offset_terms(model: onnx.ModelProto, terms: dict[str, BlockOffsets]) -> None:
    """After each MatMulNBits node named by its output in `terms`, add its input's block sums × offsets."""
    from onnx import helper, numpy_helper

    if not terms:
        return
    sums: dict[tuple[str, int], str] = {}  # (input, block size) -> its block sums
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        term = terms.get(node.output[0]) if node.op_type == "MatMulNBits" else None
        if term is None:
            nodes.append(node)
            continue
        source, output = node.input[0], node.output[0]
        rows = next(attribute.i for attribute in node.attribute if attribute.name == "K")
        key = (source, term.block_size)
        if key not in sums:
            sums[key] = f"{output}{BLOCK_SUMS_SUFFIX}"
            indicator = _block_indicator(rows, term.block_size, term.offsets.shape[0], term.offsets.dtype)
            indicator_name = f"{output}_block_indicator"
            model.graph.initializer.append(numpy_helper.from_array(indicator, indicator_name))
            nodes.append(helper.make_node("MatMul", [source, indicator_name], [sums[key]], name=sums[key]))
        grid, offset_name = f"{output}_grid", f"{output}_block_offsets"
        node.output[0] = grid
        model.graph.initializer.append(numpy_helper.from_array(term.offsets, offset_name))
        nodes.append(node)
        product = f"{output}_offset"
        nodes.append(helper.make_node("MatMul", [sums[key], offset_name], [product], name=product))
        nodes.append(helper.make_node("Add", [grid, product], [output], name=f"{output}{OFFSET_SUFFIX}"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _block_indicator(rows: int, block_size: int, blocks: int, dtype: np.dtype) -> np.ndarray:
    """The 0/1 matrix [rows, blocks] whose product with an input sums it block by block."""
    indicator = np.zeros((rows, blocks), dtype)
    indicator[np.arange(rows), np.arange(rows) // block_size] = 1.0
    return indicator
