"""Channel dependencies of a bridged model: which channels must be removed together, if at all.

Every Conv / Linear output starts a channel *space*. Spaces that meet in an element-wise op
(a residual Add, a squeeze-excite Mul) or pass through a depthwise conv are merged; a tensor's
*layout* says which spaces make up its channel axis (several after a Concat, each channel
repeated H*W times after a Flatten). A space that reaches anything the analysis does not
understand (a LayerNorm, a graph output, a grouped conv...) is frozen: kept whole.

Attention heads: a Reshape that splits a projection's channels into (heads, head_dim) replaces
the projection's space by a coarser one, one element per head; Transposes move the heads axis,
the Q-K and weights-V MatMuls tie the heads of Q, K and V together (heads are a batch axis
there), Softmax runs within each head, and the Reshape merging heads back hands the out
projection its input columns head by head. So whole heads are pruned, Q, K and V alike.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from torch import nn

from worker.bridge.module import OnnxModule, Step
from worker.bridge.spaces import Layout, Spaces

Shapes = Mapping[str, tuple[int, ...]]

# Ops that act on each channel separately and keep the channel axis as it is.
CHANNELWISE = frozenset(
    "Relu Sigmoid Tanh Clip LeakyRelu Elu Selu Celu HardSigmoid HardSwish Mish Gelu Erf Exp Log Sqrt Abs Neg "
    "Reciprocal Softplus Softsign Sin Cos Floor Ceil Round Sign Not IsNaN IsInf Identity Dropout Cast "
    "ThresholdedRelu".split()
)
# Ops over spatial dims: channel-wise only when the layout's axis is dim 1 (NC...).
SPATIAL = frozenset("MaxPool AveragePool GlobalAveragePool GlobalMaxPool Resize Upsample Pad".split())
# Broadcasting ops whose operands' channels must line up.
ELEMENTWISE = frozenset(
    "Add Sub Mul Div Pow Max Min Sum Mean Where PRelu Mod Equal Less Greater LessOrEqual GreaterOrEqual "
    "And Or Xor".split()
)


# Ops that normalize along one axis: channel-wise for any other axis.
ALONG_AXIS = frozenset({"Softmax", "LogSoftmax"})
# Reductions: channel-wise when the channel axis is not among the reduced ones.
REDUCTIONS = frozenset(
    "ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSum "
    "ReduceLogSumExp".split()
)
# Ops that read only a tensor's dims, never its values.
DIMS_ONLY = frozenset({"Shape", "Size"})


@dataclass
class ChannelGraph:
    """The result: spaces, and the layout of every tensor that has one."""

    spaces: Spaces
    layouts: dict[str, Layout]
    kept_whole_by: set[str]


class _Walker:
    def __init__(self, shapes: Shapes, exclude: Collection[str], opset: int, trust_dims: bool) -> None:
        self.shapes, self.exclude, self.opset, self.trust_dims = shapes, exclude, opset, trust_dims
        self.spaces = Spaces()
        self.layouts: dict[str, Layout] = {}
        self.kept_whole_by: set[str] = set()

    def fresh(self, tensor: str, axis: int, frozen: bool) -> None:
        size = self.shapes[tensor][axis]
        self.layouts[tensor] = Layout(axis, ((self.spaces.new(size, frozen), 1),))

    def freeze(self, layout: Layout | None, reason: str) -> None:
        """Keep a layout's channels whole, remembering what kept a prunable group whole."""
        if layout is not None and any(not self.spaces.is_frozen(space) for space, _ in layout.segments):
            self.kept_whole_by.add(reason)
        self.spaces.freeze(layout)

    def freeze_inputs(self, step: Step) -> None:
        for name in step.inputs:
            self.freeze(self.layouts.get(name), step.op)

    def same_structure(self, one: Layout, other: Layout) -> bool:
        """Same axis, and segment by segment the same size and repeat."""
        if one.axis != other.axis or len(one.segments) != len(other.segments):
            return False
        pairs = zip(one.segments, other.segments, strict=True)
        return all(r1 == r2 and self.spaces.size[s1] == self.spaces.size[s2] for (s1, r1), (s2, r2) in pairs)

    def unify(self, step: Step, operands: list[str]) -> Layout | None:
        """Merge the operands' layouts; None (and everything frozen) when they cannot be aligned."""
        present = [self.layouts[n] for n in operands if n in self.layouts]
        first = present[0]
        out_shape = self.shapes[step.outputs[0]]
        if len(out_shape) < -first.axis:
            self.freeze_inputs(step)
            return None
        width = out_shape[first.axis]
        aligned = all(self.same_structure(o, first) for o in present)
        for name in operands:
            shape = self.shapes.get(name, ())
            if name not in self.layouts and len(shape) >= -first.axis and shape[first.axis] != 1:
                aligned = False
        if not aligned or width != sum(self.spaces.size[s] * r for s, r in first.segments):
            self.freeze_inputs(step)
            return None
        for other in present[1:]:
            for (a, _), (b, _) in zip(first.segments, other.segments, strict=True):
                self.spaces.union(a, b)
        return first

    def concat(self, step: Step) -> Layout | None:
        rank = len(self.shapes[step.outputs[0]])
        axis = step.attrs["axis"] - rank if step.attrs["axis"] >= 0 else step.attrs["axis"]
        operands = [n for n in step.inputs if n]
        if any(n in self.layouts and self.layouts[n].axis != axis for n in operands):
            return self.unify(step, operands)
        segments: list[tuple[int, int]] = []
        for name in operands:
            if name in self.layouts:
                segments += self.layouts[name].segments
            else:
                segments.append((self.spaces.new(self.shapes[name][axis], frozen=True), 1))
        return Layout(axis, tuple(segments))

    def flatten(self, step: Step, layout: Layout) -> Layout | None:
        shape = self.shapes[step.inputs[0]]
        start = step.attrs.get("axis", 1) % len(shape) if shape else 0
        channel = len(shape) + layout.axis
        if channel != start:
            self.freeze_inputs(step)
            return None
        inner = 1
        for d in shape[channel + 1 :]:
            inner *= d
        return Layout(-1, tuple((s, r * inner) for s, r in layout.segments))

    def refine(self, root: int, parts: list[tuple[int, int]]) -> None:
        """Replace a group by new spaces: each segment on it becomes (part, repeat * factor) segments."""
        root = self.spaces.find(root)
        for tensor, layout in self.layouts.items():
            if any(self.spaces.find(space) == root for space, _ in layout.segments):
                segments = []
                for space, repeat in layout.segments:
                    if self.spaces.find(space) == root:
                        segments += [(part, repeat * factor) for part, factor in parts]
                    else:
                        segments.append((space, repeat))
                self.layouts[tensor] = Layout(layout.axis, tuple(segments))
        self.spaces.retired.add(root)

    def split_heads(self, layout: Layout, heads: int) -> Layout | None:
        """The layout's channels as `heads` equal blocks, each a single element of a new space."""
        if len(layout.segments) != 1:
            return None
        space, repeat = layout.segments[0]
        width = self.spaces.size[space] * repeat
        block = width // heads
        if block % repeat:
            return None
        root = self.spaces.find(space)
        per_head = block // repeat  # channels of the old space in one head
        grain = per_head * self.spaces.grain.get(root, 1)
        head_space = self.spaces.new(heads, root in self.spaces.frozen, grain)
        self.refine(root, [(head_space, per_head)])
        return Layout(layout.axis, ((head_space, 1),))

    def reshape(self, step: Step, layout: Layout) -> Layout | None:
        """Follow the channel axis through a row-major reshape: kept, merged with inner dims, or split."""
        before, after = self.shapes[step.inputs[0]], self.shapes[step.outputs[0]]
        position = len(before) + layout.axis
        prefix, width, inner = (
            math.prod(before[:position]),
            before[position],
            math.prod(before[position + 1 :]),
        )
        starts = [
            q for q in range(len(after)) if math.prod(after[:q]) == prefix and (after[q] > 1 or width == 1)
        ]
        if not starts:
            return None
        q = starts[0]
        axis, rest = q - len(after), math.prod(after[q + 1 :])
        if after[q] == width and rest == inner:
            return Layout(axis, layout.segments)
        if after[q] > width and after[q] % width == 0:
            factor = after[q] // width
            merged = [
                math.prod(before[position + 1 : position + 1 + j]) for j in range(len(before) - position)
            ]
            if factor in merged and rest * factor == inner:
                return Layout(axis, tuple((space, repeat * factor) for space, repeat in layout.segments))
            return None
        if after[q] < width and width % after[q] == 0 and rest == (width // after[q]) * inner:
            split = self.split_heads(layout, after[q])
            return None if split is None else Layout(axis, split.segments)
        return None

    def transpose(self, step: Step, layout: Layout) -> Layout:
        """The channel axis where the permutation puts it."""
        rank = len(self.shapes[step.inputs[0]])
        perm = step.attrs.get("perm") or list(reversed(range(rank)))
        return Layout(list(perm).index(rank + layout.axis) - rank, layout.segments)

    def matmul(self, step: Step, operands: list[str]) -> Layout | None:
        """Two activations multiplied: channels on a batch axis (attention heads) must line up."""
        ranks = {len(self.shapes[name]) for name in operands} | {len(self.shapes[step.outputs[0]])}
        present = [self.layouts[name] for name in operands if name in self.layouts]
        if len(ranks) != 1 or any(layout.axis > -3 for layout in present):
            return None
        return self.unify(step, operands)

    def reduction(self, step: Step, layout: Layout) -> Layout | None:
        """A reduction over other axes keeps the channels; dropped dims move the axis."""
        rank = len(self.shapes[step.inputs[0]])
        constant = step.consts[1] if len(step.consts) > 1 else None
        if len(step.inputs) > 1 and step.inputs[1] and constant is None:
            return None  # axes computed at run time
        axes = constant.reshape(-1).tolist() if constant is not None else step.attrs.get("axes")
        if not axes:
            return None  # over every axis, channels included
        reduced = {int(a) % rank for a in axes}
        channel = rank + layout.axis
        if channel in reduced:
            return None
        if step.attrs.get("keepdims", 1):
            return layout
        kept_after = sum(1 for d in range(channel + 1, rank) if d not in reduced)
        return Layout(-1 - kept_after, layout.segments)

    def along_axis(self, step: Step, layout: Layout) -> Layout | None:
        """Softmax within each channel: before opset 13 it spans every dim from `axis` on."""
        rank = len(self.shapes[step.inputs[0]])
        channel = rank + layout.axis
        if self.opset < 13:
            return layout if channel < step.attrs.get("axis", 1) % rank else None
        return layout if channel != step.attrs.get("axis", -1) % rank else None

    def layer(self, step: Step, layer: nn.Module) -> None:
        source, out = self.layouts.get(step.inputs[-1]), step.outputs[0]
        rank, excluded = len(self.shapes[out]), step.name in self.exclude
        if excluded:
            self.kept_whole_by.add("excluded nodes")
        if isinstance(layer, nn.modules.conv._ConvTransposeNd):
            if layer.groups > 1:
                self.freeze(source, "grouped ConvTranspose")
            self.fresh(out, 1 - rank, excluded or layer.groups > 1)
        elif isinstance(layer, nn.Linear):
            if source and source.axis != -1:
                self.freeze(source, "MatMul / Gemm over a non-channel axis")
            self.fresh(out, -1, excluded)
        elif isinstance(layer, nn.modules.conv._ConvNd):
            depthwise = layer.groups == layer.in_channels == layer.out_channels and layer.groups > 1
            if depthwise and source is not None:
                if excluded:
                    self.freeze(source, "excluded nodes")
                self.layouts[out] = source
                return
            if layer.groups > 1:
                self.freeze(source, "grouped Conv")
                self.kept_whole_by.add("grouped Conv")
            self.fresh(out, 1 - rank, excluded or layer.groups > 1)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and source and source.axis == 1 - rank:
            self.layouts[out] = source
        else:
            self.freeze_inputs(step)

    def step(self, step: Step, layer: nn.Module | None) -> None:
        if layer is not None:
            return self.layer(step, layer)
        operands = [n for n in step.inputs if n]
        if not any(n in self.layouts for n in operands):
            return None
        if step.op in DIMS_ONLY and self.trust_dims:
            return None  # dims computed from a pruned tensor follow it; validated after pruning
        result: Layout | None = None
        source = self.layouts.get(operands[0])
        if step.op in CHANNELWISE | SPATIAL and source is not None:
            before, after = self.shapes[operands[0]], self.shapes[step.outputs[0]]
            same = len(before) == len(after) and before[source.axis] == after[source.axis]
            on_channels = step.op in CHANNELWISE or source.axis == 1 - len(before)
            result = source if same and on_channels else None
        elif step.op in ELEMENTWISE:
            result = self.unify(step, operands)
        elif step.op == "Concat":
            result = self.concat(step)
        elif step.op == "Flatten" and source is not None:
            result = self.flatten(step, source)
        elif step.op == "Reshape" and source is not None:
            result = self.reshape(step, source)
        elif step.op == "Transpose" and source is not None:
            result = self.transpose(step, source)
        elif step.op == "MatMul" and len(operands) == 2:
            result = self.matmul(step, operands)
        elif step.op in REDUCTIONS and source is not None:
            result = self.reduction(step, source)
        elif step.op in ALONG_AXIS and source is not None:
            result = self.along_axis(step, source)
        if result is None:
            self.freeze_inputs(step)
        else:
            self.layouts[step.outputs[0]] = result
        return None


def analyze(
    module: OnnxModule, shapes: Shapes, exclude: Collection[str] = (), trust_dims: bool = False
) -> ChannelGraph:
    """Channel spaces and layouts of a bridged model, given every tensor's shape from one run."""
    # With `trust_dims` a Shape of a pruned tensor does not keep its channels whole: a shape
    # computed from it then follows the pruning, which is usually right (a view keeping the batch
    # and sequence dims) but not always (a head size worked out from the width), so the result
    # must be checked (worker/bridge/equivalence.py).
    walker = _Walker(shapes, exclude, module.opset, trust_dims)
    for step in module.steps:
        walker.step(step, module.layer_of(step))
    for spec in module.outputs:
        walker.freeze(walker.layouts.get(spec.name), "graph outputs")
    return ChannelGraph(walker.spaces, walker.layouts, walker.kept_whole_by)
