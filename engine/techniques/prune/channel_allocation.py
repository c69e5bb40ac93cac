"""Per-group channel counts chosen by sensitivity, within the parameters uniform pruning would keep.

Each group is pruned alone to every count its rounding allows (down to a tenth of its channels)
and the loss on a slice of the dataset measured; then, from every group whole, the cut that costs
the least loss per parameter saved is taken again and again until the model holds no more weights
than the same fraction of every group would leave. Sensitive layers keep more, robust ones less.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from engine.bridge import OnnxModule
from engine.bridge.channels import ChannelGraph
from engine.bridge.equivalence import mask_removed_inputs
from engine.bridge.shrink import ConvLayer
from engine.techniques.prune.channel_plan import Scores, round_up
from engine.techniques.prune.importance import objective
from engine.techniques.train.data import Samples
from engine.techniques.train.loss import distillation_mse

SAMPLES = 256
MIN_KEPT = 0.1  # no group loses more than 90% of its channels


def _loss(module: OnnxModule, samples: Samples, reference: object) -> float:
    """Cross-entropy on the labels; without them, the distance to the unpruned outputs."""
    with torch.no_grad():
        result = module(*samples.inputs)
        if samples.labels is None:
            return float(distillation_mse(result, reference))
        return float(objective(result, samples.labels))


def parameter_cost(module: OnnxModule, graph: ChannelGraph) -> dict[int, float]:
    """Weights each channel of a group carries: rows of the layers that make it, columns of its readers."""
    cost: dict[int, float] = {}
    for step in module.steps:
        layer = module.layer_of(step)
        if not isinstance(layer, ConvLayer | nn.Linear):
            continue
        per_row = layer.weight.numel() / max(1, layer.weight.shape[0])
        per_col = layer.weight.numel() / max(1, layer.weight.shape[1])
        for tensor, share in ((step.outputs[0], per_row), (step.inputs[-1], per_col)):
            layout = graph.layouts.get(tensor)
            if layout is None:
                continue
            for space, repeat in layout.segments:
                root = graph.spaces.find(space)
                # A channels-last flatten tiles the segments: each channel is read `tile` times more.
                cost[root] = cost.get(root, 0.0) + share * repeat * layout.tile
    return cost


def _curve(
    module: OnnxModule,
    graph: ChannelGraph,
    root: int,
    ranked: np.ndarray,
    counts: list[int],
    samples: Samples,
    reference: object,
) -> dict[int, float]:
    """The loss with only this group cut to each count."""
    found = {}
    for count in counts:
        masked = copy.deepcopy(module)
        mask_removed_inputs(masked, graph, {root: np.sort(np.argsort(-ranked, kind="stable")[:count])})
        found[count] = _loss(masked, samples, reference)
    return found


def allocate(
    module: OnnxModule,
    graph: ChannelGraph,
    names: Mapping[int, str],
    scores: Scores,
    uniform: Mapping[str, int],
    units: Mapping[str, int],
    samples: Samples,
) -> dict[str, int]:
    """Kept channels per group name, by sensitivity, holding at most the weights uniform counts keep."""
    part = samples.take(torch.arange(min(len(samples), SAMPLES)))
    with torch.no_grad():
        reference = module(*part.inputs)
    cost, base = parameter_cost(module, graph), _loss(module, part, reference)
    curves, kept = {}, {}
    for root, name in names.items():
        size, step = graph.spaces.size[root], units[name]
        floor = round_up(size * MIN_KEPT, step, size)
        options = list(range(size - step, floor - 1, -step))
        if root in scores and options:
            curves[name] = {size: base} | _curve(module, graph, root, scores[root], options, part, reference)
        kept[name] = size
    by_name = {name: root for root, name in names.items()}
    budget = sum(cost.get(by_name[n], 0.0) * uniform[n] for n in uniform)

    def weights() -> float:
        return sum(cost.get(by_name[n], 0.0) * kept[n] for n in kept)

    while weights() > budget + 1e-6:
        best, best_rate = None, math.inf
        for name, curve in curves.items():
            nxt = kept[name] - units[name]
            if nxt in curve:
                saved = cost.get(by_name[name], 0.0) * units[name]
                rate = (curve[nxt] - curve[kept[name]]) / max(saved, 1e-12)
                if rate < best_rate:
                    best, best_rate = name, rate
        if best is None:
            break  # every group at its floor
        kept[best] -= units[best]
    return kept
