"""prune.magnitude: zero the smallest-magnitude weights of Conv / Gemm / MatMul initializers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import StepContext, StepOutcome
from service.catalog.prune import MagnitudePruneParams

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
    """Prune to the target sparsity, optionally fine-tune, and report the sparsity of every layer stored."""
    import numpy as np
    import onnx

    from engine.bridge.weights import initializer_arrays, replace_initializers, select_weights
    from engine.model_size import save_model
    from engine.techniques.train.masked import finetune_pruned, stored_weights

    model = onnx.load(str(model_path))
    weights, warnings = select_weights(
        model, params.op_types, params.nodes_to_include, params.nodes_to_exclude
    )
    ctx.progress(0.2, f"pruning {len(weights)} layers")
    arrays = initializer_arrays(model, {w.initializer for w in weights})
    pruned = prune_arrays(arrays, params.sparsity, params.scope)
    replace_initializers(model, pruned)
    metrics: dict[str, Any] = {"target_sparsity": params.sparsity, "scope": params.scope}
    tuned: dict[str, np.ndarray] = {}
    if params.finetune is None:
        save_model(model, output_path)
    else:
        nodes = [w.node for w in weights]
        result = finetune_pruned(model, model_path, nodes, params.finetune, ctx, output_path)
        metrics["finetune"], tuned = result.report, result.weights
    stored = stored_weights(weights, pruned, tuned)
    zeros = [int(np.count_nonzero(array == 0)) for array in stored.tensors]
    total = sum(array.size for array in stored.tensors)
    metrics.update(
        per_layer_sparsity={
            node: round(int(np.count_nonzero(array == 0)) / array.size, 6)
            for node, (array, _) in stored.by_node.items()
        },
        overall_sparsity=round(sum(zeros) / total, 6),
        pruned_weights=total,
        zero_weights=sum(zeros),
    )
    return StepOutcome(metrics=metrics, warnings=[*warnings, DENSE_RUNTIME_WARNING])
