"""Data-driven channel importance, measured on the uploaded dataset rather than read off the weights.

Weight norms say little once batch norms are folded in (a channel's scale moved into its weights,
and what the next layer does with it is not in them). `taylor` is the first-order estimate of the
loss change when a channel is removed: |sum of activation x gradient| per sample, averaged
(Molchanov et al., 2019); `activation` is the mean absolute activation. Both are taken at every
Conv / Linear output and summed, normalized, over the layers that share a channel group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.bridge.shrink import ConvLayer
from engine.techniques.train.loss import as_classes, outputs_of

if TYPE_CHECKING:
    from engine.bridge import OnnxModule
    from engine.bridge.channels import ChannelGraph
    from engine.techniques.train.data import Samples

SAMPLES, BATCH = 512, 64
DATA_DRIVEN = frozenset({"taylor", "activation"})


def objective(result: Any, labels: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy on the labels; else on the model's own top class (or half the squared output)."""
    first = outputs_of(result)[0]
    if labels is not None:
        flat, target, _ = as_classes(first, labels)
        return F.cross_entropy(flat, target)
    if first.dim() == 2 and first.shape[1] > 1 and first.dtype.is_floating_point:
        return F.cross_entropy(first, first.detach().argmax(1))
    floats = [out for out in outputs_of(result) if out.dtype.is_floating_point]
    return sum((0.5 * out.pow(2).mean() for out in floats), torch.zeros(()))


def _per_channel(value: torch.Tensor, grad: torch.Tensor | None, axis: int, kind: str) -> torch.Tensor:
    """One figure per channel on `axis`, summed over the batch."""
    moved = value.detach().movedim(axis, -1)
    if kind == "activation":
        return moved.abs().flatten(0, -2).mean(0) * len(value)
    assert grad is not None
    product = (moved * grad.movedim(axis, -1)).double()
    per_sample = product.reshape(len(value), -1, product.shape[-1]).sum(1)
    return per_sample.abs().sum(0)


def channel_figures(
    module: OnnxModule, graph: ChannelGraph, samples: Samples, kind: str
) -> dict[str, np.ndarray]:
    """Per layer step with a prunable output: the chosen figure of every output channel."""
    steps = [
        step
        for step in module.steps
        if isinstance(module.layer_of(step), ConvLayer | nn.Linear) and step.outputs[0] in graph.layouts
    ]
    captured: dict[str, torch.Tensor] = {}
    totals: dict[str, torch.Tensor] = {}
    handles = []
    for step in steps:
        layer = module.layer_of(step)
        assert layer is not None

        def keep(_: nn.Module, __: object, out: torch.Tensor, name: str = step.name) -> None:
            if out.requires_grad:
                out.retain_grad()
            captured[name] = out

        handles.append(layer.register_forward_hook(keep))
    training = module.training
    module.eval()
    count = min(len(samples), SAMPLES)
    try:
        for start in range(0, count, BATCH):
            batch = samples.take(torch.arange(start, min(start + BATCH, count)))
            captured.clear()
            with torch.set_grad_enabled(kind == "taylor"):
                result = module(*batch.inputs)
                if kind == "taylor":
                    objective(result, batch.labels).backward()
            for step in steps:
                value = captured[step.name]
                axis = graph.layouts[step.outputs[0]].axis
                figure = _per_channel(value, value.grad, axis, kind)
                totals[step.name] = totals.get(step.name, 0) + figure
    finally:
        for handle in handles:
            handle.remove()
        module.zero_grad(set_to_none=True)
        module.train(training)
    return {name: (total / count).double().numpy() for name, total in totals.items()}


def data_scores(
    module: OnnxModule, graph: ChannelGraph, samples: Samples, kind: str
) -> dict[int, np.ndarray]:
    """Importance of every channel of every prunable group (by root space), from the data."""
    found: dict[int, np.ndarray] = {}
    for step_name, figures in channel_figures(module, graph, samples, kind).items():
        step = next(s for s in module.steps if s.name == step_name)
        offset = 0
        for space, repeat in graph.layouts[step.outputs[0]].segments:
            size, root = graph.spaces.size[space], graph.spaces.find(space)
            if root not in graph.spaces.frozen and offset + size * repeat <= len(figures):
                block = figures[offset : offset + size * repeat].reshape(size, repeat).sum(1)
                found[root] = found.get(root, 0) + block / (block.mean() + 1e-12)
            offset += size * repeat
    return found
