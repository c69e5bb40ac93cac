"""prune.nm: N:M semi-structured sparsity in the layout sparse tensor cores use.

Groups are M consecutive weights along a layer's reduction dimension: along K for Gemm / MatMul
(honouring transB and which operand is constant), and along input channels for Conv with the
kernel position fixed, i.e. consecutive in the K-R-S-C order TensorRT's sparse convolutions use.
A layer whose reduction dimension is not a multiple of M is left dense, with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import StepContext, StepOutcome, TechniqueError
from service.catalog.prune import NMPruneParams
from service.failures import NothingToPrune

if TYPE_CHECKING:
    import numpy as np

SPARSE_RUNTIME_WARNING = (
    "N:M sparsity is faster only where a runtime has sparse kernels (TensorRT with sparse weights on "
    "Ampere or newer GPUs); the ONNX file keeps its size and onnxruntime CPU runs it dense"
)


def _groups(array: np.ndarray, axis: int, m: int) -> np.ndarray:
    """A view of the array with the reduction axis last, split into groups of m: (..., K/m, m)."""
    import numpy as np

    moved = np.moveaxis(array, axis, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


def nm_prune(array: np.ndarray, axis: int, n: int, m: int) -> np.ndarray:
    """A copy where each group of m consecutive weights along `axis` keeps its n largest |w|."""
    import numpy as np

    groups = _groups(array, axis, m).copy()
    smallest = np.argsort(np.abs(groups), axis=-1, kind="stable")[..., : m - n]
    np.put_along_axis(groups, smallest, 0, axis=-1)
    moved_shape = np.moveaxis(array, axis, -1).shape
    return np.moveaxis(groups.reshape(moved_shape), -1, axis)


def nm_valid(array: np.ndarray, axis: int, n: int, m: int) -> bool:
    """Whether every group of m consecutive weights along `axis` has at most n non-zeros."""
    import numpy as np

    return bool((np.count_nonzero(_groups(array, axis, m), axis=-1) <= n).all())


def _layer_metrics(array: np.ndarray, axis: int, n: int, m: int) -> dict[str, Any]:
    """Whether one stored weight follows the pattern, its group count and its sparsity."""
    import numpy as np

    return {
        "pattern_valid": nm_valid(array, axis, n, m),
        "groups": array.size // m,
        "sparsity": round(float(np.count_nonzero(array == 0)) / array.size, 6),
    }


def run(model_path: Path, output_path: Path, params: NMPruneParams, ctx: StepContext) -> StepOutcome:
    """Apply N:M sparsity where a selected layer's reduction dimension allows it; optionally fine-tune."""
    import numpy as np
    import onnx

    from engine.bridge.weights import initializer_arrays, replace_initializers, select_weights
    from engine.model_size import save_model
    from engine.techniques.train.masked import finetune_pruned, stored_weights

    n, m = params.n, params.m
    model = onnx.load(str(model_path))
    weights, warnings = select_weights(
        model, params.op_types, params.nodes_to_include, params.nodes_to_exclude
    )
    arrays = initializer_arrays(model, {w.initializer for w in weights})
    ctx.progress(0.2, f"applying {n}:{m} sparsity to {len(weights)} layers")
    pruned: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for weight in weights:
        array = arrays[weight.initializer]
        width = array.shape[weight.reduction_axis]
        if width % m:
            skipped[weight.node] = f"reduction dimension {width} is not a multiple of {m}"
        elif weight.initializer not in pruned:
            pruned[weight.initializer] = nm_prune(array, weight.reduction_axis, n, m)
    if not pruned:
        detail = f"no selected layer has a reduction dimension that is a multiple of {m}: {skipped}"
        raise TechniqueError(NothingToPrune, detail, skipped_layers=skipped)
    warnings += [f"{node} left dense: {reason}" for node, reason in skipped.items()]
    replace_initializers(model, pruned)
    metrics: dict[str, Any] = {"pattern": f"{n}:{m}"}
    tuned: dict[str, np.ndarray] = {}
    if params.finetune is None:
        save_model(model, output_path)
    else:
        # Every node reading a pruned initializer keeps its zeros, a skipped one sharing it included.
        nodes = [w.node for w in weights if w.initializer in pruned]
        result = finetune_pruned(model, model_path, nodes, params.finetune, ctx, output_path)
        metrics["finetune"], tuned = result.report, result.weights
    stored = stored_weights(weights, pruned, tuned)
    layers = {
        node: _layer_metrics(array, axis, n, m)
        for node, (array, axis) in stored.by_node.items()
        if node not in skipped
    }
    total = sum(a.size for a in stored.tensors)
    zeros = sum(int(np.count_nonzero(a == 0)) for a in stored.tensors)
    metrics.update(
        layers=layers,
        skipped_layers=skipped,
        all_valid=all(layer["pattern_valid"] for layer in layers.values()),
        overall_sparsity=round(zeros / total, 6) if total else 0.0,
    )
    return StepOutcome(metrics=metrics, warnings=[*warnings, SPARSE_RUNTIME_WARNING])
