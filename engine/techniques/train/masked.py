"""Fine-tuning that keeps pruned weights at zero, shared by prune.magnitude and prune.nm.

The pruned graph is bridged to torch and the zeros of every pruned node's weight become a mask;
masked weights are zeroed again after each optimizer step, so only the surviving weights learn and
the sparsity (and any N:M pattern) that pruning reached is what the exported model holds. The
export goes through torch (which gives the weighted nodes their original names back where it
can): the final weights are returned by original node name for the technique's metrics (the
exporter stores them as they are, transposed, or scaled per output channel by a folded batch
norm, all of which keep every zero).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import StepContext, TechniqueError
from service.catalog.prune import FinetuneParams
from service.failures import PrunedWeightsRevived

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from engine.bridge import OnnxModule
    from engine.bridge.weights import Weight

# nn.Linear and nn.ConvNd weights hold the input features / channels on axis 1.
TORCH_REDUCTION_AXIS = 1
SPAN = (0.3, 0.9)

Masks = dict[str, tuple["torch.nn.Parameter", "torch.Tensor"]]


@dataclass(frozen=True)
class Tuned:
    """The fine-tuning loop's report, and each trained pruned node's final weight (torch layout)."""

    report: dict[str, Any]
    weights: dict[str, np.ndarray]


@dataclass(frozen=True)
class StoredWeights:
    """Pruned weights as the artifact stores them: per node with its reduction axis, and each tensor once."""

    by_node: dict[str, tuple[np.ndarray, int]]
    tensors: list[np.ndarray]


def _masks(module: OnnxModule, nodes: Collection[str]) -> Masks:
    """Node name -> (its layer's weight, where that weight is zero), for the selected nodes' layers."""
    import torch

    masks: Masks = {}
    for step in module.steps:
        weight = getattr(module.layer_of(step), "weight", None)
        if step.name in nodes and isinstance(weight, torch.nn.Parameter):
            masks[step.name] = (weight, weight.detach() == 0)
    return masks


def _zero(masks: Masks) -> None:
    """Set every masked weight back to zero."""
    import torch

    with torch.no_grad():
        for name, (weight, mask) in masks.items():
            if mask.device != weight.device:  # training moved the weight to the GPU: the mask follows once
                mask = mask.to(weight.device)
                masks[name] = (weight, mask)
            weight.masked_fill_(mask, 0)


def _check_zeros(masks: Masks) -> None:
    """Every masked weight is still zero; anything else is a bug, not the user's doing."""
    revived = sorted(
        name for name, (weight, mask) in masks.items() if bool(weight.detach()[mask.to(weight.device)].any())
    )
    if revived:
        detail = f"fine-tuning revived pruned weights of {', '.join(revived)}"
        raise TechniqueError(PrunedWeightsRevived, detail, nodes=revived)


def finetune_pruned(
    pruned: onnx.ModelProto,
    original: Path,
    nodes: Collection[str],
    params: FinetuneParams,
    ctx: StepContext,
    output_path: Path,
) -> Tuned:
    """Fine-tune the pruned model with the named nodes' zeros held, distilling from `original`; export it."""
    import torch

    from engine.bridge import from_onnx, to_onnx
    from engine.techniques.train.finetune import finetune

    torch.set_num_threads(max(1, ctx.threads))
    data = ctx.dataset(params.dataset_id)
    student, teacher = from_onnx(pruned), from_onnx(original)
    masks = _masks(student, set(nodes))
    # Weights under a mask are zero by construction; zeroing first keeps that true whatever built them.
    _zero(masks)
    report = finetune(
        student, teacher, data, params, ctx.progress, span=SPAN, after_step=lambda: _zero(masks)
    )
    _check_zeros(masks)
    ctx.progress(0.95, "exporting to ONNX")
    to_onnx(student, output_path)
    # float64 holds every float16 / bfloat16 / float32 value exactly, so zeros stay zeros.
    weights = {name: weight.detach().cpu().double().numpy() for name, (weight, _) in masks.items()}
    return Tuned(report, weights)


def stored_weights(
    weights: Iterable[Weight], pruned: dict[str, np.ndarray], tuned: dict[str, np.ndarray]
) -> StoredWeights:
    """Trained nodes have their own tensor (torch layout); the others keep their pruned initializer."""
    by_node: dict[str, tuple[np.ndarray, int]] = {}
    tensors: dict[tuple[str, str], np.ndarray] = {}
    for weight in weights:
        if weight.node in tuned:
            by_node[weight.node] = (tuned[weight.node], TORCH_REDUCTION_AXIS)
            tensors["node", weight.node] = tuned[weight.node]
        elif weight.initializer in pruned:
            by_node[weight.node] = (pruned[weight.initializer], weight.reduction_axis)
            tensors["initializer", weight.initializer] = pruned[weight.initializer]
    return StoredWeights(by_node, list(tensors.values()))
