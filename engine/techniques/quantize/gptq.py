"""GPTQ (Frantar et al., 2023): block-wise int4/int8 weights whose rounding errors are compensated
on the weights not yet quantized, weighted by the layer inputs' second moments (the Hessian).

onnxruntime 1.31's own GPTQ (its copy of Neural Compressor's) updates the remaining weights with a
column of the upper Cholesky factor, which is zero below the diagonal, so no error is ever
compensated; it then re-quantizes the result on a new grid. Probed on correlated inputs, its
layer-output error equalled round-to-nearest's (0.110 vs 0.111) where this implementation's was
0.011; tests/worker/test_gptq.py holds this one against round-to-nearest. Hence this module: the
Hessians from an onnxruntime session, the algorithm in numpy, and MatMulNBits nodes packed from
exactly the integers and scales it chose (nbits_pack.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.techniques.quantize.block_grid import Quantized, grid, round_to_nearest

if TYPE_CHECKING:
    import onnx

# Protobuf cannot serialize a model past 2 GiB: larger ones keep their weights in a side file.
EXTERNAL_DATA_BYTES = 1_800_000_000
# Dampening: this share of the Hessian's mean diagonal is added to it (the paper's default).
PERCDAMP = 0.01


def quantize_weight(
    weight: np.ndarray,
    hessian: np.ndarray,
    bits: int,
    block_size: int,
    symmetric: bool,
    float_offsets: bool = False,
) -> Quantized:
    """GPTQ of one weight [K, N] (K = input features) given the Hessian [K, K] of its inputs."""
    top = 2**bits - 1
    w = weight.astype(np.float64).copy()
    rows = w.shape[0]
    h = hessian.astype(np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[dead, :] = 0.0  # an input that is always zero: its weights do not matter, zero quantizes exactly
    h[np.diag_indices(rows)] += PERCDAMP * np.mean(np.diag(h))
    # Upper Cholesky factor of the inverse Hessian: row i holds how input i's error spreads to i+1...
    inverse = np.linalg.cholesky(np.linalg.inv(h)).T
    blocks = -(-rows // block_size)
    q = np.zeros(w.shape, dtype=np.uint8)
    scales, zeros, offsets = (np.zeros((blocks, w.shape[1])) for _ in range(3))
    # One quantization block is one lazy-update batch: its grid is chosen on the weights as updated
    # by every earlier block, as the reference implementation does at group boundaries.
    for block in range(blocks):
        start, end = block * block_size, min((block + 1) * block_size, rows)
        scale, zero, offset = grid(w[start:end], bits, symmetric, float_offsets)
        scales[block], zeros[block], offsets[block] = scale, zero, offset
        part, errors = w[start:end].copy(), np.zeros((end - start, w.shape[1]))
        local = inverse[start:end, start:end]
        for i in range(end - start):
            integers = np.clip(np.round((part[i] - offset) / scale) + zero, 0, top)
            q[start + i] = integers
            error = (part[i] - (integers - zero) * scale - offset) / local[i, i]
            part[i:] -= np.outer(local[i, i:], error)
            errors[i] = error
        w[end:] -= inverse[start:end, end:].T @ errors
    kept = offsets.astype(np.float32) if float_offsets else None
    return Quantized(q, scales.astype(np.float32), zeros.astype(np.uint8), kept)


def hessians(
    model: onnx.ModelProto, activations: list[str], feeds: Iterable[dict[str, np.ndarray]], workdir: Path
) -> dict[str, np.ndarray]:
    """2/n * sum(x x^T) over every row of each named activation, across the calibration feeds."""
    import onnx
    import onnxruntime as ort

    if not activations:
        return {}
    # The activations become outputs of a copy on disk (the graph is restored right after saving).
    present = {output.name for output in model.graph.output}
    added = [onnx.ValueInfoProto(name=name) for name in activations if name not in present]
    model.graph.output.extend(added)
    probe = workdir / "gptq-probe.onnx"
    large = model.ByteSize() > EXTERNAL_DATA_BYTES
    try:
        onnx.save(model, str(probe), save_as_external_data=large, location=f"{probe.name}.data")
    finally:
        for _ in added:
            model.graph.output.pop()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(probe), options, providers=["CPUExecutionProvider"])
    sums: dict[str, np.ndarray] = {}
    counts = dict.fromkeys(activations, 0)
    for feed in feeds:
        for name, value in zip(activations, session.run(activations, feed), strict=True):
            flat = np.asarray(value, dtype=np.float64).reshape(-1, value.shape[-1])
            sums[name] = sums.get(name, 0.0) + flat.T @ flat
            counts[name] += flat.shape[0]
    del session
    probe.unlink(missing_ok=True)
    probe.with_name(f"{probe.name}.data").unlink(missing_ok=True)
    return {name: 2.0 * total / max(counts[name], 1) for name, total in sums.items()}


def weight_of(initializers: dict[str, onnx.TensorProto], node: onnx.NodeProto) -> np.ndarray | None:
    """A MatMul's constant 2-D float weight, or None."""
    from onnx import TensorProto, numpy_helper

    tensor = initializers.get(node.input[1])
    if tensor is None or tensor.data_type != TensorProto.FLOAT or len(tensor.dims) != 2:
        return None
    return numpy_helper.to_array(tensor)


def quantize_model(
    model: onnx.ModelProto,
    feeds: Iterable[dict[str, np.ndarray]] | None,
    excluded: set[str],
    workdir: Path,
    *,
    bits: int,
    block_size: int,
    symmetric: bool,
    accuracy_level: int,
    float_offsets: bool = False,
) -> onnx.ModelProto:
    """`model` with every MatMul of a constant 2-D weight, bar `excluded`, replaced by a MatMulNBits
    node: GPTQ calibrated on `feeds`, or round-to-nearest without them."""
    from onnx import helper

    from engine.techniques.quantize.block_offsets import BlockOffsets, add_offset_terms
    from engine.techniques.quantize.gemm_as_matmul import drop_unread_initializers
    from engine.techniques.quantize.nbits_pack import matmul_nbits

    constants = {tensor.name: tensor for tensor in model.graph.initializer}
    targets = [
        (node, weight)
        for node in model.graph.node
        if node.op_type == "MatMul" and node.name not in excluded
        for weight in [weight_of(constants, node)]
        if weight is not None
    ]
    sources = sorted({node.input[0] for node, _ in targets})
    inputs = hessians(model, sources, feeds, workdir) if feeds is not None else None
    originals: set[str] = set()
    terms: dict[str, BlockOffsets] = {}
    for node, weight in targets:
        if inputs is None:
            quantized = round_to_nearest(weight, bits, block_size, symmetric, float_offsets)
        elif node.input[0] in inputs:
            quantized = quantize_weight(
                weight, inputs[node.input[0]], bits, block_size, symmetric, float_offsets
            )
        else:
            continue  # the calibration data never reached this node
        replacement, initializers = matmul_nbits(node, quantized, bits, block_size, symmetric, accuracy_level)
        originals.add(node.input[1])
        model.graph.initializer.extend(initializers)
        node.CopyFrom(replacement)
        if quantized.offset is not None:
            terms[node.output[0]] = BlockOffsets(quantized.offset, block_size)
    add_offset_terms(model, terms)
    # A float weight still read elsewhere (a tied embedding's Gather) stays.
    drop_unread_initializers(model, originals)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model
