"""Structured pruning of a bridged model: rank channels, pick the kept ones, slice the layers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from engine.bridge.channels import ChannelGraph
from engine.bridge.module import OnnxModule, Step, layer_key
from engine.bridge.ops_shape import PRUNED_RANGES, PRUNED_RESHAPE, PrunedWidth
from engine.bridge.spaces import Layout

ConvLayer = nn.modules.conv._ConvNd
ConvTransposeLayer = nn.modules.conv._ConvTransposeNd
BatchNorm = nn.modules.batchnorm._BatchNorm


@dataclass
class Plan:
    """Kept channel indices per pruned group (by root space), and groups ranked by a fallback."""

    keep: dict[int, np.ndarray] = field(default_factory=dict)
    fallback_groups: int = 0


def _single_root(graph: ChannelGraph, layout: Layout | None) -> int | None:
    if layout is None or len(layout.segments) != 1 or layout.segments[0][1] != 1:
        return None
    return graph.spaces.find(layout.segments[0][0])


def _normalized(values: np.ndarray) -> np.ndarray:
    return values / (values.mean() + 1e-12)


def _segment_scores(
    graph: ChannelGraph, layout: Layout | None, weight: torch.Tensor, order: int
) -> dict[int, np.ndarray]:
    """Each prunable space's share of a layer's output rows, one normalized norm per element."""
    if layout is None:
        return {}
    rows = weight.detach().reshape(weight.shape[0], -1).double()
    norms = torch.linalg.vector_norm(rows, ord=order, dim=1).numpy()
    found: dict[int, np.ndarray] = {}
    offset = 0
    for space, repeat in layout.segments:
        size, root = graph.spaces.size[space], graph.spaces.find(space)
        if root not in graph.spaces.frozen:
            # A head is `repeat` consecutive rows: its importance is theirs together.
            block = norms[offset : offset + size * repeat].reshape(size, repeat).sum(1)
            found[root] = found.get(root, 0) + _normalized(block)
        offset += size * repeat
    return found if offset == len(norms) else {}


def scores(
    module: OnnxModule, graph: ChannelGraph, importance: str
) -> tuple[dict[int, np.ndarray], set[int]]:
    """Channel importance per prunable group; also the groups where bn_scale fell back to l2."""
    by_norm: dict[int, np.ndarray] = {}
    by_bn: dict[int, np.ndarray] = {}
    order = 1 if importance == "l1" else 2
    for step in module.steps:
        layer = module.layer_of(step)
        if isinstance(layer, ConvLayer | nn.Linear):
            rows = layer.weight.transpose(0, 1) if isinstance(layer, ConvTransposeLayer) else layer.weight
            found = _segment_scores(graph, graph.layouts.get(step.outputs[0]), rows, order)
            for group, ranked in found.items():
                by_norm[group] = by_norm.get(group, 0) + ranked
        elif isinstance(layer, BatchNorm) and layer.weight is not None:
            root = _single_root(graph, graph.layouts.get(step.inputs[0]))
            if root is not None and root not in graph.spaces.frozen:
                by_bn[root] = by_bn.get(root, 0) + _normalized(layer.weight.detach().abs().double().numpy())
    if importance != "bn_scale":
        return by_norm, set()
    return {root: by_bn.get(root, ranked) for root, ranked in by_norm.items()}, set(by_norm) - set(by_bn)


def plan(module: OnnxModule, graph: ChannelGraph, importance: str, sparsity: float, round_to: int) -> Plan:
    """Keep the most important channels of each group, the count rounded up to a multiple of round_to."""
    ranked, fallback = scores(module, graph, importance)
    result = Plan()
    for root, score in ranked.items():
        size = graph.spaces.size[root]
        # For a group of heads the kept channels (heads times channels per head) are what is rounded.
        grain = graph.spaces.grain.get(root, 1)
        unit = round_to // math.gcd(round_to, grain)
        kept = min(size, unit * math.ceil(size * (1 - sparsity) / unit))
        if kept < size:
            result.keep[root] = np.sort(np.argsort(-score, kind="stable")[:kept])
    result.fallback_groups = len(fallback & set(result.keep))
    return result


def kept_indices(
    graph: ChannelGraph, layout: Layout | None, keep: dict[int, np.ndarray]
) -> np.ndarray | None:
    """Indices of a tensor's channel axis that survive, or None when it keeps them all."""
    if layout is None:
        return None
    parts, offset = [], 0
    for space, repeat in layout.segments:
        size = graph.spaces.size[space]
        channels = keep.get(graph.spaces.find(space), np.arange(size))
        parts.append(offset + (channels[:, None] * repeat + np.arange(repeat)).reshape(-1))
        offset += size * repeat
    indices = np.concatenate(parts)
    if len(indices) == offset:
        return None
    return np.concatenate([indices + k * offset for k in range(layout.tile)])


def _take(tensor: torch.Tensor, dim: int, indices: np.ndarray | None) -> torch.Tensor:
    return tensor if indices is None else tensor.index_select(dim, torch.from_numpy(indices).long())


def _slice_param(layer: nn.Module, name: str, dims: dict[int, np.ndarray | None]) -> None:
    value = getattr(layer, name)
    if value is None:
        return
    data = value.detach()
    for dim, indices in dims.items():
        data = _take(data, dim, indices)
    if isinstance(value, nn.Parameter):
        setattr(layer, name, nn.Parameter(data.clone(), requires_grad=value.requires_grad))
    else:
        setattr(layer, name, data.clone())


def _slice_constant(module: OnnxModule, step: Step, index: int, dim: int, indices: np.ndarray) -> None:
    """Give a step its own copy of a per-channel constant input, cut to the kept channels."""
    # A copy per step: the same initializer may be read by steps whose channels are pruned differently.
    value = np.take(np.asarray(step.consts[index]), indices, axis=dim)
    name = f"{step.inputs[index]}/pruned/{step.name}"
    key = layer_key(name, set(module.constant_keys.values()))
    module.constants.register_buffer(key, torch.from_numpy(np.ascontiguousarray(value)))
    module.constant_keys[name] = key
    step.inputs[index], step.consts[index] = name, value


def _slice_ranges(step: Step, graph: ChannelGraph, keep: dict[int, np.ndarray]) -> None:
    """Split sizes and Slice bounds over the kept channels of the input."""
    kept = kept_indices(graph, graph.layouts.get(step.inputs[0]), keep)
    if kept is not None:
        bounds = [(int(np.sum(kept < a)), int(np.sum(kept < b))) for a, b in graph.ranges[step.name]]
        step.attrs[PRUNED_RANGES] = (graph.layouts[step.inputs[0]].axis, bounds)


def apply(module: OnnxModule, graph: ChannelGraph, keep: dict[int, np.ndarray]) -> dict[str, list[int]]:
    """Slice every layer to the kept channels; returns [before, after] output channels per layer node."""
    changed: dict[str, list[int]] = {}
    slices = {(s.step, s.index): s for s in graph.constant_slices}
    for step in module.steps:
        for index in range(len(step.inputs)):
            found = slices.get((step.name, index))
            kept = kept_indices(graph, graph.layouts.get(found.tensor), keep) if found else None
            if found is not None and kept is not None:
                _slice_constant(module, step, index, found.dim, kept)
        if step.name in graph.ranges:
            _slice_ranges(step, graph, keep)
        layer = module.layer_of(step)
        rows = kept_indices(graph, graph.layouts.get(step.outputs[0]), keep)
        cols = kept_indices(graph, graph.layouts.get(step.inputs[-1]), keep)
        if isinstance(layer, ConvTransposeLayer):
            before = layer.out_channels
            _slice_param(layer, "weight", {0: cols, 1: rows})  # (in, out / groups, kernel...)
            _slice_param(layer, "bias", {0: rows})
            layer.in_channels, layer.out_channels = (
                layer.weight.shape[0],
                layer.weight.shape[1] * layer.groups,
            )
            changed[step.name] = [before, layer.out_channels]
        elif isinstance(layer, ConvLayer):
            before = layer.out_channels
            depthwise = layer.groups == layer.in_channels == layer.out_channels and layer.groups > 1
            _slice_param(layer, "weight", {0: rows} if depthwise else {0: rows, 1: cols})
            _slice_param(layer, "bias", {0: rows})
            layer.out_channels = layer.weight.shape[0]
            layer.in_channels = layer.weight.shape[1] * (layer.out_channels if depthwise else layer.groups)
            layer.groups = layer.out_channels if depthwise else layer.groups
            changed[step.name] = [before, layer.out_channels]
        elif isinstance(layer, nn.Linear):
            before = layer.out_features
            _slice_param(layer, "weight", {0: rows, 1: cols})
            _slice_param(layer, "bias", {0: rows})
            layer.out_features, layer.in_features = layer.weight.shape
            changed[step.name] = [before, layer.out_features]
        elif step.op == "Reshape" and rows is not None:
            # The target may hold the old width (or head count) as a constant: it is scaled on export.
            layout = graph.layouts[step.outputs[0]]
            width = layout.tile * sum(graph.spaces.size[space] * repeat for space, repeat in layout.segments)
            step.attrs[PRUNED_RESHAPE] = PrunedWidth(layout.axis, len(rows), width)
        elif isinstance(layer, BatchNorm):
            for name in ("weight", "bias", "running_mean", "running_var"):
                _slice_param(layer, name, {0: cols})
            layer.num_features = (
                layer.running_mean.shape[0] if layer.running_mean is not None else layer.num_features
            )
    return changed
