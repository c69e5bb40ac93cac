"""Shape and indexing ONNX ops as torch functions, dynamic where the exporter needs them to be."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from engine.bridge.dtypes import torch_dtype
from engine.bridge.registry import Call, axis_of, op


@op("Shape")
def shape(call: Call) -> Tensor:
    """The input's shape as int64, optionally a [start, end) slice of it."""
    dims = torch._shape_as_tensor(call.x())
    start, end = call.attr("start", 0), call.attr("end")
    return dims[start:end] if (start, end) != (0, None) else dims


# Step attribute set by structured pruning on a reshape whose channels were cut.
PRUNED_RESHAPE = "_pruned_width"
# Step attribute set by structured pruning on a Split / Slice of pruned channels:
# (axis, [(start, end) of each output over the kept channels]).
PRUNED_RANGES = "_pruned_ranges"


@dataclass
class PrunedWidth:
    """The target axis whose width pruning cut from `before` to `kept`, and whether to scale it there."""

    axis: int
    kept: int
    before: int
    # For a computed target: decided on the first run, which is eager (the pruning check), so the
    # export records the decision rather than a comparison the exporter would fold into constants.
    scale: bool | None = None


@op("Reshape")
def reshape(call: Call) -> Tensor:
    """Reshape where 0 copies the input's dim (unless allowzero) and -1 is inferred."""
    x = call.x()
    pruned = call.attr(PRUNED_RESHAPE)
    known = call.const(1)
    traced = call.traced_sizes(1)
    if known is not None or (traced is not None and (pruned is None or pruned.scale is not None)):
        dims: list[Any] = [int(d) for d in known.reshape(-1)] if known is not None else traced  # type: ignore[assignment]
        if pruned is not None and (known is not None or pruned.scale) and dims[pruned.axis] > 0:
            # Scaled, not replaced: the width may also hold other dims (a flatten of H x W).
            dims[pruned.axis] = dims[pruned.axis] * pruned.kept // pruned.before
        if not call.attr("allowzero", 0):
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return x.reshape(dims)
    target = call.x(1)
    copied = target == 0 if not call.attr("allowzero", 0) else torch.zeros_like(target, dtype=torch.bool)
    # Zeros in a computed shape only come from empty dims; skip the copy-dim graph when there are none.
    if bool(copied.any()):
        current = torch._shape_as_tensor(x)
        current = torch.cat([current, torch.ones_like(current)])[: target.numel()]
        target = torch.where(copied, current, target)
    if pruned is not None:
        target = _pruned_target(x, target, copied, pruned)
    return torch._reshape_from_tensor(x, target)  # exports as one Reshape fed by the shape tensor


def _pruned_target(x: Tensor, target: Tensor, copied: Tensor, pruned: PrunedWidth) -> Tensor:
    """A computed target with the pruned axis scaled by kept / before, unless it already fits the input."""
    # A width read off a pruned tensor is already right (the target then holds as many elements
    # as the input); one read off an unpruned tensor, or a constant, is the old width.
    if pruned.scale is None:
        pruned.scale = int(target.prod()) != x.numel()
    if not pruned.scale:
        return target
    axis = pruned.axis % target.numel()
    entry = target[axis : axis + 1]
    scaled = torch.where(entry > 0, entry * pruned.kept // pruned.before, entry)
    entry = torch.where(copied[axis : axis + 1], entry, scaled)  # a copied dim is pruned already
    return torch.cat([target[:axis], entry, target[axis + 1 :]])


@op("Flatten")
def flatten(call: Call) -> Tensor:
    """To 2-D: dims before `axis` and dims from `axis` on."""
    x = call.x()
    axis = axis_of(call.attr("axis", 1), x.dim())
    if axis == 0:
        return x.reshape(1, -1)
    if axis == x.dim():
        return x.reshape(-1, 1)
    return x.flatten(axis).flatten(0, axis - 1)


@op("Transpose")
def transpose(call: Call) -> Tensor:
    """Permute dims (reversed by default)."""
    x = call.x()
    perm = call.attr("perm") or list(reversed(range(x.dim())))
    return x.permute(*perm)


def _axes(call: Call) -> list[int] | None:
    axes = call.ints(1) if call.has(1) else call.attr("axes")
    return None if axes is None else [int(a) for a in axes]


@op("Squeeze")
def squeeze(call: Call) -> Tensor:
    """Drop size-1 dims (the given ones, or all)."""
    x, axes = call.x(), _axes(call)
    if axes is None:
        return x.squeeze()
    for axis in sorted((axis_of(a, x.dim()) for a in axes), reverse=True):
        x = x.squeeze(axis)
    return x


@op("Unsqueeze")
def unsqueeze(call: Call) -> Tensor:
    """Insert size-1 dims at positions of the output."""
    x, axes = call.x(), _axes(call) or []
    rank = x.dim() + len(axes)
    for axis in sorted(axis_of(a, rank) for a in axes):
        x = x.unsqueeze(axis)
    return x


@op("Concat")
def concat(call: Call) -> Tensor:
    """Concatenate along an axis."""
    return torch.cat([t for t in call.inputs if t is not None], call.attr("axis"))


@op("Split")
def split(call: Call) -> Sequence[Tensor]:
    """Split into given sizes or equal chunks (the last one smaller)."""
    x = call.x()
    axis = call.attr("axis", 0)
    pruned = call.attr(PRUNED_RANGES)
    if pruned is not None:
        return torch.split(x, [end - start for start, end in pruned[1]], axis)
    parts = call.ints(1) if call.has(1) else call.attr("split")
    if not parts:
        count = call.attr("num_outputs", call.n_outputs)
        return torch.split(x, math.ceil(int(x.shape[axis]) / count), axis)
    return torch.split(x, [int(p) for p in parts], axis)


@op("Slice")
def slice_(call: Call) -> Tensor:
    """Strided slices with ONNX clamping; negative steps go through an explicit index."""
    x = call.x()
    if call.has(1):
        starts, ends = call.ints(1), call.ints(2)
        axes = call.ints(3) if call.has(3) else list(range(len(starts)))
        steps = call.ints(4) if call.has(4) else [1] * len(starts)
    else:
        starts, ends = call.attr("starts"), call.attr("ends")
        axes, steps = call.attr("axes") or list(range(len(starts))), [1] * len(starts)
    pruned = call.attr(PRUNED_RANGES)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = axis_of(int(axis), x.dim())
        if pruned is not None and axis == axis_of(pruned[0], x.dim()):
            start, end = pruned[1][0]
        if int(step) < 0:
            picks = range(*slice(int(start), int(end), int(step)).indices(int(x.shape[axis])))
            x = torch.index_select(x, axis, torch.tensor(list(picks), dtype=torch.int64))
        else:
            x = x[(slice(None),) * axis + (slice(start, end, step),)]
    return x


@op("Gather")
def gather(call: Call) -> Tensor:
    """numpy.take along an axis; a constant table with an activation index is an nn.Embedding."""
    if isinstance(call.layer, nn.Embedding):
        index = call.x(1)
        return call.layer(torch.where(index < 0, index + call.layer.num_embeddings, index))
    x, axis = call.x(0), axis_of(call.attr("axis", 0), call.x(0).dim())
    known = call.const(1)
    if known is not None and known.ndim == 0:
        return x.select(axis, int(known))
    return x[(slice(None),) * axis + (call.x(1),)]


@op("GatherElements")
def gather_elements(call: Call) -> Tensor:
    """torch.gather with ONNX's negative indices."""
    x, axis = call.x(0), call.attr("axis", 0)
    index = call.x(1)
    index = torch.where(index < 0, index + x.shape[axis], index)
    return torch.gather(x, axis, index)


@op("Expand")
def expand(call: Call) -> Tensor:
    """Bidirectional broadcast to a shape (a 1 in the shape keeps the input's dim)."""
    x = call.x()
    ones = torch.ones(call.ints(1), dtype=x.dtype, device=x.device)
    return torch.logical_and(x, ones) if x.dtype == torch.bool else x * ones


@op("Tile")
def tile(call: Call) -> Tensor:
    """Repeat along each dim."""
    return call.x().repeat(call.ints(1))


@op("ConstantOfShape")
def constant_of_shape(call: Call) -> Tensor:
    """A tensor of the given shape filled with one value (0.0 by default)."""
    value = call.attr("value")
    if value is None:
        return torch.zeros(call.ints(0), dtype=torch.float32)
    filler = torch.from_numpy(value.reshape(-1)[:1].copy())
    return torch.full(call.ints(0), filler.item(), dtype=filler.dtype)


@op("Range")
def range_(call: Call) -> Tensor:
    """start, start + delta, ... below limit."""
    start = call.x(0)
    bounds = [call.traced_sizes(i) for i in range(3)]
    if all(bound is not None for bound in bounds):  # sizes under torch.export: a symbolic length
        first, limit, delta = (bound[0] for bound in bounds)  # type: ignore[index]
        return torch.arange(first, limit, delta, dtype=start.dtype)
    # 0-d tensors (not Python numbers) keep the range dynamic when traced for export.
    return torch.arange(start, call.x(1), call.x(2), dtype=start.dtype)  # type: ignore[call-overload]


@op("Cast")
def cast(call: Call) -> Tensor:
    """Convert the element type."""
    return call.x().to(torch_dtype(call.attr("to")))


@op("CastLike")
def cast_like(call: Call) -> Tensor:
    """Convert to the element type of the second input."""
    return call.x(0).to(call.x(1).dtype)
