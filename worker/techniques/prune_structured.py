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
    import torch

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


def _shapes(module: OnnxModule) -> tuple[list[torch.Tensor], dict[str, tuple[int, ...]]]:
    """Example inputs of the model's signature, and every tensor's shape on them."""
    import torch

    from worker.bridge import example_inputs

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
    return examples, shapes


def _nothing_to_prune(graph: ChannelGraph, round_to: int) -> TechniqueError:
    reasons = ", ".join(sorted(graph.kept_whole_by)) or "nothing"
    detail = (
        f"no channel group can be pruned: channels were kept whole by {reasons}, and the other groups "
        f"have at most round_to={round_to} channels"
    )
    return TechniqueError("nothing-to-prune", detail, kept_whole_by=sorted(graph.kept_whole_by))


def _attempt(
    module: OnnxModule, params: StructuredPruneParams, trust_dims: bool, warnings: list[str]
) -> tuple[OnnxModule, dict[str, Any]] | None:
    """Prune a copy of the module; None when the result is not exactly the original minus its channels."""
    from worker.bridge import equivalence, shrink
    from worker.bridge.channels import analyze

    pruned = copy.deepcopy(module)
    examples, shapes = _shapes(pruned)
    graph = analyze(pruned, shapes, set(params.exclude), trust_dims=trust_dims)
    plan = shrink.plan(pruned, graph, params.importance, params.sparsity, params.round_to)
    if not plan.keep:
        raise _nothing_to_prune(graph, params.round_to)
    reference = equivalence.masked_reference(pruned, graph, plan.keep)
    channels = shrink.apply(pruned, graph, plan.keep)
    if not equivalence.same_outputs(pruned, reference, equivalence.random_inputs(examples)):
        return None
    if plan.fallback_groups:
        warnings.append(
            f"{plan.fallback_groups} channel groups have no batch norm; ranked by l2 norm instead"
        )
    return pruned, {
        "channels": {node: {"before": b, "after": a} for node, (b, a) in channels.items()},
        "groups_pruned": len(plan.keep),
        "groups_kept_whole": len(graph.spaces.roots()) - len(plan.keep),
    }


def _prune(
    module: OnnxModule, params: StructuredPruneParams, warnings: list[str]
) -> tuple[OnnxModule, dict[str, Any]]:
    """The pruned module and the metrics about its channels, checked against the original.

    Shapes read off pruned tensors are first trusted to follow the pruning; if the check finds
    one that does not, the analysis runs again keeping every tensor whose shape is read whole.
    """
    unknown = sorted(set(params.exclude) - {step.name for step in module.steps})
    if unknown:
        warnings.append(f"excluded node names not in the model: {', '.join(unknown)}")
    for trust_dims in (True, False):
        result = _attempt(module, params, trust_dims, warnings)
        if result is not None:
            return result
    detail = "the pruned model does not compute what the original computes without the removed channels"
    raise TechniqueError("pruning-unverified", detail)


def run(model_path: Path, output_path: Path, params: StructuredPruneParams, ctx: StepContext) -> StepOutcome:
    """Prune channels, optionally fine-tune, export back to ONNX with the same inputs and outputs."""
    import onnx
    import torch

    from worker.bridge import from_onnx, to_onnx
    from worker.techniques.finetune import finetune

    torch.set_num_threads(max(1, ctx.threads))
    original = onnx.load(str(model_path))
    teacher = from_onnx(original)
    ctx.progress(0.05, "analysing channel dependencies")
    warnings: list[str] = []
    module, metrics = _prune(teacher, params, warnings)
    ctx.progress(0.2, f"pruned {metrics['groups_pruned']} channel groups")
    if params.finetune:
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
