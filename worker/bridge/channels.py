"""Channel dependencies of a bridged model: which channels must be removed together, if at all.

Every Conv / Linear output starts a channel *space*. Spaces that meet in an element-wise op
(a residual Add, a squeeze-excite Mul) or pass through a depthwise conv are merged; a tensor's
*layout* says which spaces make up its channel axis (several after a Concat, each channel
repeated H*W times after a Flatten). A space that reaches anything the analysis does not
understand (a Reshape, a LayerNorm, a graph output, a grouped conv...) is frozen: kept whole.
"""

from __future__ import annotations

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


@dataclass
class ChannelGraph:
    """The result: spaces, and the layout of every tensor that has one."""

    spaces: Spaces
    layouts: dict[str, Layout]


class _Walker:
    def __init__(self, shapes: Shapes, exclude: Collection[str]) -> None:
        self.shapes, self.exclude = shapes, exclude
        self.spaces = Spaces()
        self.layouts: dict[str, Layout] = {}

    def fresh(self, tensor: str, axis: int, frozen: bool) -> None:
        size = self.shapes[tensor][axis]
        self.layouts[tensor] = Layout(axis, ((self.spaces.new(size, frozen), 1),))

    def freeze_inputs(self, step: Step) -> None:
        for name in step.inputs:
            self.spaces.freeze(self.layouts.get(name))

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

    def layer(self, step: Step, layer: nn.Module) -> None:
        source, out = self.layouts.get(step.inputs[-1]), step.outputs[0]
        rank, excluded = len(self.shapes[out]), step.name in self.exclude
        if isinstance(layer, nn.Linear):
            if source and source.axis != -1:
                self.spaces.freeze(source)
            self.fresh(out, -1, excluded)
        elif isinstance(layer, nn.modules.conv._ConvNd):
            depthwise = layer.groups == layer.in_channels == layer.out_channels and layer.groups > 1
            if depthwise and source is not None:
                if excluded:
                    self.spaces.freeze(source)
                self.layouts[out] = source
                return
            if layer.groups > 1:
                self.spaces.freeze(source)
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
        if result is None:
            self.freeze_inputs(step)
        else:
            self.layouts[step.outputs[0]] = result
        return None


def analyze(module: OnnxModule, shapes: Shapes, exclude: Collection[str] = ()) -> ChannelGraph:
    """Channel spaces and layouts of a bridged model, given every tensor's shape from one run."""
    walker = _Walker(shapes, exclude)
    for step in module.steps:
        walker.step(step, module.layer_of(step))
    for spec in module.outputs:
        walker.spaces.freeze(walker.layouts.get(spec.name))
    return ChannelGraph(walker.spaces, walker.layouts)
