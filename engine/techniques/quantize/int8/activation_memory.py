"""How many samples one calibration batch may hold so that the step stays inside its memory limit.

onnxruntime's calibrators run an augmented copy of the model that reads every intermediate tensor,
and its arena grows with all of them at once: an OCR recognizer (200 MB of activations per 48×320
line image) peaked at 7 GB of resident memory with 32-sample batches and failed with
`std::bad_alloc` under the sandbox's 8 GiB address-space limit; with 4-sample batches it peaked at
2 GB and calibrated to the same ranges (MinMax ranges do not depend on how samples are batched).
"""

from __future__ import annotations

import resource
from collections.abc import Mapping

import numpy as np
import onnx

# Activations of one calibration batch may take at most this much, or this share of the
# process's address-space limit when that is smaller (onnxruntime reserves far more than it uses).
ACTIVATION_BUDGET_BYTES = 1 << 30
LIMIT_SHARE = 8
SMALL_CONSTANT_BYTES = 4096


def activation_budget() -> int:
    """Bytes one calibration batch's activations may take in this process."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return ACTIVATION_BUDGET_BYTES
    return min(ACTIVATION_BUDGET_BYTES, soft // LIMIT_SHARE)


def bytes_per_sample(model: onnx.ModelProto, sample_shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """Sum of every tensor the graph computes for one sample, by shape inference; None when unknown.

    `sample_shapes` gives each input's shape without its batch axis. Tensors whose shape stays
    symbolic are left out, so the figure is a lower bound.
    """
    skeleton = _without_weights(model)
    for value in skeleton.graph.input:
        shape = sample_shapes.get(value.name)
        dims = value.type.tensor_type.shape.dim
        if shape is None or len(dims) != len(shape) + 1:
            continue
        for dim, size in zip(dims, (1, *shape), strict=True):
            if not dim.HasField("dim_value"):
                dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
    except Exception:  # shape inference raises on graphs it cannot follow; the caller keeps its batch
        return None
    total = 0
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        sizes = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
        if not tensor.HasField("shape") or min(sizes, default=1) < 0 or not tensor.elem_type:
            continue
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).itemsize
        total += int(np.prod(sizes, dtype=np.int64)) * itemsize
    return total or None


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose large initializers keep their type and dims but not their values."""
    skeleton = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import)
    graph = skeleton.graph
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    for tensor in model.graph.initializer:
        if tensor.ByteSize() <= SMALL_CONSTANT_BYTES:
            # Small constants (shapes, axes) stay whole: shape inference reads their values.
            graph.initializer.append(tensor)
        else:
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    skeleton.functions.extend(model.functions)
    return skeleton


def calibration_batch(
    model: onnx.ModelProto, sample_shapes: Mapping[str, tuple[int, ...]], requested: int
) -> int:
    """`requested`, lowered (to no less than 1) until one batch's activations fit the budget."""
    per_sample = bytes_per_sample(model, sample_shapes)
    if per_sample is None:
        return requested
    return max(1, min(requested, activation_budget() // per_sample))
