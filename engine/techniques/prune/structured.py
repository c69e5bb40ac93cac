"""prune.structured: remove whole channels / neurons through the torch bridge, then fine-tune.

Channel groups come from the bridge's dependency analysis (residual adds, concatenations,
splits and slices, depthwise convs, batch norms, per-channel PReLU slopes and scales, flattens,
attention heads split by a reshape to (heads, head_dim)); layers producing graph outputs,
excluded nodes and anything the analysis cannot follow keep all their channels (for example
heads folded into the batch axis, as nn.MultiheadAttention does), listed in `kept_whole`.
Tensors really shrink, so the exported model is smaller and runs fewer operations on any runtime.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.errortext import brief
from service.catalog.prune import StructuredPruneParams
from service.failures import ModelNotRunnable, NothingToPrune, PruningUnverified, UnsupportedModel

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from engine.bridge import OnnxModule
    from engine.bridge.channels import ChannelGraph
    from engine.techniques.prune.channel_plan import Planner

FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
# The second size the pruned model is checked at: symbolic dims only, batch 3 and twice the
# analysed size (fixed dims never vary).
OTHER_BATCH = 3

log = logging.getLogger("modelpress.prune")


def count_parameters(model: onnx.ModelProto) -> int:
    """Number of float weights stored in a model's initializers."""
    total = 0
    for init in model.graph.initializer:
        if init.data_type in FLOAT_TYPES:
            size = 1
            for dim in init.dims:
                size *= dim
            total += size
    return total


def _shapes(module: OnnxModule) -> tuple[list[torch.Tensor], dict[str, tuple[int, ...]]]:
    """Example inputs of the model's signature, and every tensor's shape on them."""
    from engine.bridge.export import runnable_inputs

    if any(spec.shape is None for spec in module.inputs):
        unranked = next(spec.name for spec in module.inputs if spec.shape is None)
        detail = f"structured pruning needs ranked inputs: input {unranked} has no known rank"
        raise TechniqueError(UnsupportedModel, detail)
    try:
        examples, values = runnable_inputs(module)
    except (RuntimeError, IndexError, ValueError) as error:
        detail = f"the bridged model does not run on example inputs of its signature: {brief(error)}"
        raise TechniqueError(ModelNotRunnable, detail) from None
    return examples, {name: tuple(value.shape) for name, value in values.items()}


def _nothing_to_prune(graph: ChannelGraph, round_to: int) -> TechniqueError:
    """The error for a model with no prunable group, naming what kept the groups whole."""
    reasons = ", ".join(sorted(graph.kept_whole_by)) or "nothing"
    detail = (
        f"no channel group can be pruned: channels were kept whole by {reasons}, and the other groups "
        f"are too small to prune with round_to={round_to}"
    )
    return TechniqueError(
        NothingToPrune, detail, kept_whole_by=sorted(graph.kept_whole_by), kept_whole=kept_whole(graph)
    )


# Why each kind of node keeps the channels it reads whole; an op type not listed has no channel rule.
_WHY_KEPT = {
    "graph outputs": "a graph output's width is part of the model's interface",
    "excluded nodes": "named in nodes_to_exclude",
    "grouped Conv": "a grouped convolution's group count fixes how many channels it reads",
    "grouped ConvTranspose": "a grouped transposed convolution's group count fixes its channels",
    "convolution over a non-channel axis": "its weights mix the channels as a spatial axis",
    "MatMul / Gemm over a non-channel axis": "it multiplies along another axis, so the channels are data",
}
_MIXING_OPS = {
    "Softmax",
    "LogSoftmax",
    "ReduceMax",
    "ReduceMin",
    "ReduceSum",
    "ReduceMean",
    "ReduceL2",
    "Flatten",
}


def why_kept(reason: str) -> str:
    """A sentence a user can act on for one kept-whole reason (an op type or a named rule)."""
    if reason in _WHY_KEPT:
        return _WHY_KEPT[reason]
    if reason in _MIXING_OPS or reason.startswith("Reduce"):
        return f"{reason} combines values across the channel axis, so removing a channel changes every output"
    return f"the bridge has no channel rule for {reason}, so it keeps the channels it reads rather than guess"


def kept_whole(graph: ChannelGraph) -> list[dict[str, str]]:
    """Each node that kept a prunable channel group whole, and why, for the step's metrics."""
    return [{"node": k.node, "reason": k.reason, "why": why_kept(k.reason)} for k in graph.kept_whole]


def _probes(module: OnnxModule, examples: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Random inputs at the analysed sizes and at other ones: a pruned width must not bake a size in."""
    from engine.bridge import equivalence, example_inputs

    other = example_inputs(module, batch=OTHER_BATCH, size=2 * module.example_size)
    return [equivalence.random_inputs(examples, seed=0), equivalence.random_inputs(other, seed=1)]


@dataclass
class Pruned:
    """A pruned copy of a module, its metrics, and per layer node what the pruning changed."""

    module: OnnxModule
    metrics: dict[str, Any]
    fallback_groups: int
    # Layer node -> the original output channels it kept (None: all of them).
    rows: dict[str, np.ndarray | None]
    # Layer nodes whose input or output channels changed.
    touched: set[str]


def _changes(
    module: OnnxModule, graph: ChannelGraph, keep: dict[int, np.ndarray]
) -> tuple[dict[str, np.ndarray | None], set[str]]:
    """Kept output rows per layer node, and the layer nodes whose inputs or outputs lose channels."""
    from engine.bridge.shrink import kept_indices

    rows, touched = {}, set()
    for step in module.steps:
        if step.layer is None:
            continue
        rows[step.name] = kept_indices(graph, graph.layouts.get(step.outputs[0]), keep)
        cols = kept_indices(graph, graph.layouts.get(step.inputs[-1]), keep)
        if rows[step.name] is not None or cols is not None:
            touched.add(step.name)
    return rows, touched


def _prune_checked(
    module: OnnxModule, params: StructuredPruneParams, trust_dims: bool, planner: Planner
) -> Pruned | None:
    """A pruned copy with its metrics; None if it is not the original minus its channels."""
    from engine.bridge import equivalence, shrink
    from engine.bridge.channels import analyze

    pruned = copy.deepcopy(module)
    examples, shapes = _shapes(pruned)
    graph = analyze(pruned, shapes, set(params.exclude), trust_dims=trust_dims)
    plan = planner(pruned, graph)
    if not plan.keep:
        raise _nothing_to_prune(graph, params.round_to)
    rows, touched = _changes(pruned, graph, plan.keep)
    probes = _probes(pruned, examples)
    equivalence.mask_removed_inputs(pruned, graph, plan.keep)
    wanted = [equivalence.outputs(pruned, probe) for probe in probes]
    if wanted[0] is None:
        raise TechniqueError(ModelNotRunnable, "the model does not run on random inputs of its signature")
    channels = shrink.apply(pruned, graph, plan.keep)
    for probe, expected in zip(probes, wanted, strict=True):
        if expected is None:
            continue  # the model does not take inputs of this size
        got = equivalence.outputs(pruned, probe)
        if got is None or not equivalence.same_outputs(got, expected):
            return None
    metrics = {
        "channels": {node: {"before": b, "after": a} for node, (b, a) in channels.items()},
        "groups_pruned": len(plan.keep),
        "groups_kept_whole": len(graph.spaces.roots()) - len(plan.keep),
        "kept_whole": kept_whole(graph),
    }
    return Pruned(pruned, metrics, plan.fallback_groups, rows, touched)


def prune(module: OnnxModule, params: StructuredPruneParams, warnings: list[str], planner: Planner) -> Pruned:
    """The pruned module and what changed, checked against the original."""
    from engine.bridge.equivalence import RUN_ERRORS

    unknown = sorted(set(params.exclude) - {step.name for step in module.steps})
    if unknown:
        warnings.append(f"excluded node names not in the model: {', '.join(unknown)}")
    # Shapes read off pruned tensors are first trusted to follow the pruning; if the check finds
    # one that does not, the analysis runs again keeping every tensor whose shape is read whole.
    for trust_dims in (True, False):
        try:
            result = _prune_checked(module, params, trust_dims, planner)
        except (*RUN_ERRORS, KeyError) as error:
            log.warning("structured pruning attempt failed (trust_dims=%s): %r", trust_dims, error)
            result = None
        if result is None:
            continue
        if not trust_dims:
            warnings.append(
                "shapes computed from pruned tensors did not follow the pruning: tensors whose shape the "
                "model reads were kept whole"
            )
        if result.fallback_groups:
            warnings.append(
                f"{result.fallback_groups} channel groups have no batch norm; ranked by l2 norm instead"
            )
        return result
    detail = "the pruned model does not compute what the original computes without the removed channels"
    raise TechniqueError(PruningUnverified, detail)


def run(model_path: Path, output_path: Path, params: StructuredPruneParams, ctx: StepContext) -> StepOutcome:
    """Prune channels (in one step or several), fine-tune, export back to ONNX with the same interface."""
    import onnx
    import torch

    from engine.bridge import from_onnx, to_onnx
    from engine.techniques.prune.structured_stages import prune_and_recover

    torch.set_num_threads(max(1, ctx.threads))
    original = onnx.load(str(model_path))
    teacher = from_onnx(original)
    ctx.progress(0.05, "analysing channel dependencies")
    warnings: list[str] = []
    module, metrics = prune_and_recover(teacher, params, ctx, warnings)
    if not params.finetune:
        warnings.append("not fine-tuned: accuracy usually drops after structured pruning; add `finetune`")
    ctx.progress(0.95, "exporting to ONNX")
    to_onnx(module, output_path)
    metrics["parameters_before"] = count_parameters(original)
    metrics["parameters_after"] = count_parameters(onnx.load(str(output_path)))
    metrics.update(sparsity=params.sparsity, importance=params.ranking, round_to=params.round_to)
    return StepOutcome(metrics=metrics, warnings=warnings)
