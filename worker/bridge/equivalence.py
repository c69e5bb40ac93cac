"""Proof that a structured pruning is exact: the pruned model computes what the original does when
the readers of every removed channel ignore it.

Removing a channel is the same as zeroing the input columns of the layers that read it (a head
gone from Q, K and V is the same as its out-projection columns zeroed). So the original model with
those columns zeroed must give the pruned model's outputs; any difference is a dependency the
channel analysis got wrong, caught before a wrong model is handed back.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from worker.bridge.channels import ChannelGraph
from worker.bridge.module import OnnxModule
from worker.bridge.shrink import ConvLayer, ConvTransposeLayer, kept_indices

# Allowed difference, relative to the largest output: summation order changes with the widths.
TOLERANCE = 1e-4


def masked_reference(module: OnnxModule, graph: ChannelGraph, keep: dict[int, np.ndarray]) -> OnnxModule:
    """A copy of the unpruned module whose layers read none of the channels the plan removes."""
    reference = copy.deepcopy(module)
    for step in reference.steps:
        layer = reference.layer_of(step)
        if not isinstance(layer, ConvLayer | nn.Linear):
            continue
        if isinstance(layer, ConvLayer) and layer.groups > 1:
            continue  # depthwise: channel c only makes channel c, which goes with it
        cols = kept_indices(graph, graph.layouts.get(step.inputs[-1]), keep)
        if cols is None:
            continue
        axis = 0 if isinstance(layer, ConvTransposeLayer) else 1  # where the layer's input channels are
        removed = torch.from_numpy(np.setdiff1d(np.arange(layer.weight.shape[axis]), cols)).long()
        with torch.no_grad():
            layer.weight.index_fill_(axis, removed, 0)
    return reference


def random_inputs(examples: Sequence[Tensor]) -> list[Tensor]:
    """Inputs shaped like the examples: normal floats (zeros exercise too little), zero integers."""
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(x.shape, generator=generator).to(x.dtype) if x.dtype.is_floating_point else x
        for x in examples
    ]


def same_outputs(pruned: OnnxModule, reference: OnnxModule, inputs: Sequence[Tensor]) -> bool:
    """Whether the pruned model runs and matches the reference on every float output."""
    with torch.no_grad():
        try:
            got = pruned.run(list(inputs))
        except RuntimeError:
            return False
        expected = reference.run(list(inputs))
    for spec in pruned.outputs:
        actual, wanted = got[spec.name], expected[spec.name]
        if actual.shape != wanted.shape:
            return False
        if wanted.dtype.is_floating_point:
            scale = float(wanted.abs().max()) if wanted.numel() else 0.0
            if float((actual - wanted).abs().max()) > TOLERANCE * max(scale, 1.0):
                return False
        elif not torch.equal(actual, wanted):
            return False
    return True
