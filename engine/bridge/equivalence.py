"""Checking that a structured pruning is exact: the pruned model must compute what the original
computes when the readers of every removed channel ignore it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from engine.bridge.channels import ChannelGraph
from engine.bridge.module import OnnxModule
from engine.bridge.shrink import ConvLayer, ConvTransposeLayer, kept_indices

Outputs = dict[str, Tensor]

# Errors a model raises when it cannot run on some input (an index out of range, a bad reshape).
RUN_ERRORS = (RuntimeError, IndexError, ValueError)


def mask_removed_inputs(module: OnnxModule, graph: ChannelGraph, keep: dict[int, np.ndarray]) -> None:
    """Zero, in place, every layer input column that reads a channel the plan removes."""
    # Removing a channel equals its readers ignoring it (a head gone from Q, K and V equals its
    # out-projection columns zeroed); producers stay whole, so a producer / reader mismatch in
    # the analysis shows up as a difference.
    for step in module.steps:
        layer = module.layer_of(step)
        if not isinstance(layer, ConvLayer | nn.Linear):
            continue
        if isinstance(layer, ConvLayer) and not isinstance(layer, ConvTransposeLayer) and layer.groups > 1:
            continue  # depthwise: channel c only makes channel c, which goes with it
        cols = kept_indices(graph, graph.layouts.get(step.inputs[-1]), keep)
        if cols is None:
            continue
        axis = 0 if isinstance(layer, ConvTransposeLayer) else 1  # where the layer's input channels are
        removed = torch.from_numpy(np.setdiff1d(np.arange(layer.weight.shape[axis]), cols)).long()
        with torch.no_grad():
            layer.weight.index_fill_(axis, removed, 0)


def random_inputs(examples: Sequence[Tensor], seed: int) -> list[Tensor]:
    """Inputs shaped like the examples: normal floats, and 0 / 1 integers (valid ids and mask values)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(x.shape, generator=generator).to(x.dtype)
        if x.dtype.is_floating_point
        else torch.randint(0, 2, x.shape, generator=generator).to(x.dtype)
        for x in examples
    ]


def outputs(module: OnnxModule, inputs: Sequence[Tensor]) -> Outputs | None:
    """The module's graph outputs on the inputs, or None when it cannot run on them."""
    with torch.no_grad():
        try:
            values = module.run(list(inputs))
        except RUN_ERRORS:
            return None
    return {spec.name: values[spec.name] for spec in module.outputs}


def _close(actual: Tensor, wanted: Tensor) -> bool:
    """Same shape, NaNs and infinities in the same places, finite values equal up to rounding."""
    if actual.shape != wanted.shape:
        return False
    if not wanted.dtype.is_floating_point:
        return torch.equal(actual, wanted)
    finite, infinite = torch.isfinite(wanted), torch.isinf(wanted)
    if not torch.equal(finite, torch.isfinite(actual)) or not torch.equal(actual[infinite], wanted[infinite]):
        return False
    if not bool(finite.any()):
        return False  # nothing to compare: not verified
    got, want = actual[finite].double(), wanted[finite].double()
    # Summation order changes with the widths: allow rounding at the dtype's precision.
    tolerance = max(1e-4, 64 * torch.finfo(wanted.dtype).eps) * max(float(want.abs().max()), 1.0)
    return float((got - want).abs().max()) <= tolerance


def same_outputs(got: Outputs, wanted: Outputs) -> bool:
    """Whether every output of the pruned model matches the reference's."""
    return all(_close(got[name], wanted[name]) for name in wanted)
