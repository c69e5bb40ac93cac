"""prune.magnitude: zero the smallest-magnitude weights of Conv / Gemm / MatMul initializers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from service.catalog.prune import MagnitudePruneParams
from worker.techniques.base import StepContext, StepOutcome

if TYPE_CHECKING:
    import numpy as np

DENSE_RUNTIME_WARNING = (
    "unstructured sparsity keeps every tensor its original shape: the ONNX file is no smaller until it is "
    "compressed, and dense runtimes (onnxruntime CPU) run no faster"
)


def _smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` smallest values of a flat array."""
    import numpy as np

    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return np.argpartition(magnitudes, count - 1)[:count]


def prune_arrays(arrays: dict[str, np.ndarray], sparsity: float, scope: str) -> dict[str, np.ndarray]:
    """Copies of the arrays with the smallest |w| zeroed, per array or over all of them at once."""
    import numpy as np

    if scope == "per_layer":
        pruned = {}
        for name, array in arrays.items():
            flat = array.reshape(-1).copy()
            flat[_smallest(np.abs(flat), round(sparsity * flat.size))] = 0
            pruned[name] = flat.reshape(array.shape)
        return pruned
    names = list(arrays)
    flat = np.concatenate([arrays[n].reshape(-1).astype(np.float32) for n in names])
    flat[_smallest(np.abs(flat), round(sparsity * flat.size))] = 0
    offsets = np.cumsum([0] + [arrays[n].size for n in names])
    return {n: flat[offsets[i] : offsets[i + 1]].reshape(arrays[n].shape) for i, n in enumerate(names)}


def run(model_path: Path, output_path: Path, params: MagnitudePruneParams, ctx: StepContext) -> StepOutcome:
    """Prune to the target sparsity and report the sparsity reached in every layer."""
    import numpy as np
    import onnx

    from worker.bridge.weights import initializer_arrays, replace_initializers, save_model, select_weights

    model = onnx.load(str(model_path))
    weights, warnings = select_weights(
        model, params.op_types, params.nodes_to_include, params.nodes_to_exclude
    )
    ctx.progress(0.2, f"pruning {len(weights)} layers")
    arrays = initializer_arrays(model, {w.initializer for w in weights})
    pruned = prune_arrays(arrays, params.sparsity, params.scope)
    replace_initializers(model, pruned)
    save_model(model, output_path)
    zeros = {name: int(np.count_nonzero(array == 0)) for name, array in pruned.items()}
    total = sum(array.size for array in pruned.values())
    return StepOutcome(
        metrics={
            "target_sparsity": params.sparsity,
            "scope": params.scope,
            "per_layer_sparsity": {
                w.node: round(zeros[w.initializer] / pruned[w.initializer].size, 6) for w in weights
            },
            "overall_sparsity": round(sum(zeros.values()) / total, 6),
            "pruned_weights": total,
            "zero_weights": sum(zeros.values()),
        },
        warnings=[*warnings, DENSE_RUNTIME_WARNING],
    )
