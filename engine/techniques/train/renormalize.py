"""Batch norms re-inserted after pruned convolutions for fine-tuning, and folded back for export.

An exported model has its batch norms folded into the convolutions, so its pruned layers train
without the re-normalization that lets an unfolded model recover at once. A norm put back after
each pruned convolution, with running statistics measured on the data and an affine equal to
them, reproduces the folded outputs exactly in eval mode; `realign` then gives each norm the
original model's statistics of the channels it kept (what an unfolded model's trained norm does
for the layer after a pruned one), and fine-tuning learns with the norms in training mode.
Folding them back leaves the exported graph with exactly the nodes plain pruning gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from engine.bridge import OnnxModule, Step
from engine.bridge.module import layer_key
from engine.bridge.shrink import BatchNorm, ConvLayer, ConvTransposeLayer
from engine.techniques.train.data import Samples

STAT_BATCH = 256
NORMS = {3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
SUFFIX = "::renorm"
EPS = 1e-5

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def candidates(module: OnnxModule, touched: Iterable[str]) -> list[Step]:
    """Touched plain convolutions whose output no batch norm reads yet and that is no graph output."""
    names, graph_outputs = set(touched), {spec.name for spec in module.outputs}
    normalized = {
        name for step in module.steps if isinstance(module.layer_of(step), BatchNorm) for name in step.inputs
    }
    found = []
    for step in module.steps:
        layer = module.layer_of(step)
        plain = isinstance(layer, ConvLayer) and not isinstance(layer, ConvTransposeLayer)
        out = step.outputs[0]
        if plain and step.name in names and out not in normalized and out not in graph_outputs:
            found.append(step)
    return found


def conv_stats(module: OnnxModule, steps: Iterable[Step], samples: Samples) -> Stats:
    """Per-channel mean and (biased) variance of each step's output over the samples, in eval mode."""
    sums: dict[str, list[torch.Tensor]] = {}
    handles = []
    for step in steps:
        layer = module.layer_of(step)
        assert layer is not None

        def record(_: nn.Module, __: object, out: torch.Tensor, name: str = step.name) -> None:
            values = out.detach().double().transpose(0, 1).flatten(1)
            totals = sums.setdefault(name, [torch.zeros(len(values), dtype=torch.float64)] * 3)
            sums[name] = [
                totals[0] + values.shape[1],
                totals[1] + values.sum(1),
                totals[2] + (values**2).sum(1),
            ]

        handles.append(layer.register_forward_hook(record))
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(samples), STAT_BATCH):
                module(*samples.take(torch.arange(start, min(start + STAT_BATCH, len(samples)))).inputs)
    finally:
        for handle in handles:
            handle.remove()
        module.train(training)
    stats = {}
    for name, (count, total, squares) in sums.items():
        mean = total / count
        stats[name] = (mean, (squares / count - mean**2).clamp_min(0))
    return stats


def insert(module: OnnxModule, steps: list[Step], samples: Samples) -> list[str]:
    """Put an identity-initialized batch norm after each step; returns the inserted steps' names."""
    stats = conv_stats(module, steps, samples)
    taken = set(module.layers.keys())
    inserted = []
    for conv in steps:
        layer = module.layer_of(conv)
        assert isinstance(layer, ConvLayer)
        mean, var = stats[conv.name]
        norm = NORMS[layer.weight.dim()](len(mean), eps=EPS).to(layer.weight.dtype)
        assert norm.running_mean is not None and norm.running_var is not None
        with torch.no_grad():
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
            norm.weight.copy_((var + EPS).sqrt())
            norm.bias.copy_(mean)
        key = layer_key(conv.name + SUFFIX, taken)
        module.layers[key] = norm
        hidden = conv.outputs[0] + SUFFIX
        step = Step(conv.name + SUFFIX, "BatchNormalization", [hidden], [conv.outputs[0]], {}, [None], key)
        conv.outputs[0] = hidden
        module.steps.insert(module.steps.index(conv) + 1, step)
        inserted.append(step.name)
    return inserted


def realign(
    module: OnnxModule, inserted: Iterable[str], original: Stats, kept: Mapping[str, np.ndarray]
) -> None:
    """Give each inserted norm the original model's output statistics of the channels its conv kept."""
    for name in inserted:
        conv_name = name.removesuffix(SUFFIX)
        norm = _norm(module, name)
        mean, var = original[conv_name]
        index = torch.from_numpy(kept.get(conv_name, np.arange(len(mean)))).long()
        with torch.no_grad():
            norm.weight.copy_((var[index] + EPS).sqrt())
            norm.bias.copy_(mean[index])


def recalibrate(module: OnnxModule, inserted: Iterable[str], samples: Samples) -> None:
    """Running statistics of the inserted norms re-measured on the samples (a cumulative average)."""
    norms = [_norm(module, name) for name in inserted]
    module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum, norm.training = None, True
    try:
        with torch.no_grad():
            for start in range(0, len(samples), STAT_BATCH):
                module(*samples.take(torch.arange(start, min(start + STAT_BATCH, len(samples)))).inputs)
    finally:
        for norm in norms:
            norm.momentum, norm.training = 0.1, False


def fold(module: OnnxModule, inserted: Iterable[str]) -> None:
    """Fold each inserted norm into the convolution before it and remove it from the graph."""
    for name in inserted:
        step = _step(module, name)
        conv = next(s for s in module.steps if s.outputs and s.outputs[0] == step.inputs[0])
        layer, norm = module.layer_of(conv), module.layers[step.layer or ""]
        assert isinstance(layer, ConvLayer) and isinstance(norm, BatchNorm)
        assert norm.running_mean is not None and norm.running_var is not None
        with torch.no_grad():
            scale = norm.weight / (norm.running_var + norm.eps).sqrt()
            shift = norm.bias - norm.running_mean * scale
            layer.weight.mul_(scale.reshape(-1, *[1] * (layer.weight.dim() - 1)))
            bias = shift if layer.bias is None else layer.bias * scale + shift
        layer.bias = nn.Parameter(bias.detach().clone())
        conv.outputs[0] = step.outputs[0]
        module.steps.remove(step)
        del module.layers[step.layer or ""]


def _step(module: OnnxModule, name: str) -> Step:
    return next(step for step in module.steps if step.name == name)


def _norm(module: OnnxModule, name: str) -> BatchNorm:
    """The batch norm layer of an inserted step."""
    norm = module.layers[_step(module, name).layer or ""]
    assert isinstance(norm, BatchNorm)
    return norm
