"""prune.structured: remove whole channels / neurons through the torch bridge, then fine-tune.

Channel groups come from the bridge's dependency analysis (residual adds, concatenations,
depthwise convs, batch norms, flattens, attention heads split by a reshape to (heads, head_dim));
layers producing graph outputs, excluded nodes and anything the analysis cannot follow keep all
their channels (for example heads folded into the batch axis, as nn.MultiheadAttention does).
Tensors really shrink, so the exported model is smaller and runs fewer operations on any runtime.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.catalog.prune import StructuredPruneParams
from worker.techniques.base import StepContext, StepOutcome, TechniqueError

if TYPE_CHECKING:
    import onnx

    from worker.bridge import OnnxModule
    from worker.bridge.channels import ChannelGraph

FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


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


def _analyze(module: OnnxModule, exclude: list[str]) -> ChannelGraph:
    import torch

    from worker.bridge import example_inputs
    from worker.bridge.channels import analyze

    try:
        examples = example_inputs(module)
    except ValueError as error:
        raise TechniqueError(
            "unsupported-model", f"structured pruning needs ranked inputs: {error}"
        ) from None
    try:
        with torch.no_grad():
            shapes = {name: tuple(value.shape) for name, value in module.run(examples).items()}
    except RuntimeError as error:
        detail = f"the bridged model does not run on example inputs of its signature: {error}"
        raise TechniqueError("model-not-runnable", detail) from None
    return analyze(module, shapes, set(exclude))


def _prune(module: OnnxModule, params: StructuredPruneParams, warnings: list[str]) -> dict[str, Any]:
    """Rank, choose and slice channels in place; returns the metrics about the channels."""
    from worker.bridge import shrink

    graph = _analyze(module, params.exclude)
    unknown = sorted(set(params.exclude) - {step.name for step in module.steps})
    if unknown:
        warnings.append(f"excluded node names not in the model: {', '.join(unknown)}")
    plan = shrink.plan(module, graph, params.importance, params.sparsity, params.round_to)
    if not plan.keep:
        detail = (
            "no channel group can be pruned: each one feeds a graph output, an excluded node or an op whose "
            f"channels are kept whole, or has at most round_to={params.round_to} channels"
        )
        raise TechniqueError("nothing-to-prune", detail)
    if plan.fallback_groups:
        warnings.append(
            f"{plan.fallback_groups} channel groups have no batch norm; ranked by l2 norm instead"
        )
    channels = shrink.apply(module, graph, plan.keep)
    roots = graph.spaces.roots()
    return {
        "channels": {node: {"before": b, "after": a} for node, (b, a) in channels.items()},
        "groups_pruned": len(plan.keep),
        "groups_kept_whole": len(roots) - len(plan.keep),
    }


def run(model_path: Path, output_path: Path, params: StructuredPruneParams, ctx: StepContext) -> StepOutcome:
    """Prune channels, optionally fine-tune, export back to ONNX with the same inputs and outputs."""
    import onnx
    import torch

    from worker.bridge import from_onnx, to_onnx
    from worker.techniques.finetune import finetune

    torch.set_num_threads(max(1, ctx.threads))
    original = onnx.load(str(model_path))
    module = from_onnx(original)
    teacher = copy.deepcopy(module) if params.finetune else None
    ctx.progress(0.05, "analysing channel dependencies")
    warnings: list[str] = []
    metrics = _prune(module, params, warnings)
    ctx.progress(0.2, f"pruned {metrics['groups_pruned']} channel groups")
    if params.finetune and teacher is not None:
        data = ctx.dataset(params.finetune.dataset_id)
        metrics["finetune"] = finetune(module, teacher, data, params.finetune, ctx.progress, span=(0.2, 0.9))
    else:
        warnings.append("not fine-tuned: accuracy usually drops after structured pruning; add `finetune`")
    ctx.progress(0.95, "exporting to ONNX")
    to_onnx(module, output_path)
    metrics["parameters_before"] = count_parameters(original)
    metrics["parameters_after"] = count_parameters(onnx.load(str(output_path)))
    metrics.update(sparsity=params.sparsity, importance=params.importance, round_to=params.round_to)
    return StepOutcome(metrics=metrics, warnings=warnings)
