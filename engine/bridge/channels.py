"""Channel dependencies of a bridged model: which channels must be removed together, if at all.

Every Conv / Linear output starts a channel *space*. Spaces that meet in an element-wise op
(a residual Add, a squeeze-excite Mul) or pass through a depthwise conv are merged; a tensor's
*layout* says which spaces make up its channel axis (several after a Concat, each channel
repeated H*W times after a Flatten; tiled H*W times, channel-minor, when the tensor was
flattened channels-last, which only a Linear layer may then read). A Split or Slice takes
channel ranges: a range end inside a space cuts that space in two everywhere
(engine/bridge/range_rules.py). Constants with one value per channel (PReLU slopes, scales,
instance-norm parameters) are sliced with the channels.
A space that reaches anything the analysis does not understand (a LayerNorm, a graph output, a
grouped conv...) is frozen: kept whole, and the node and reason are recorded.

Attention heads: a Reshape that splits a projection's channels into (heads, head_dim) replaces
the projection's space by a coarser one, one element per head; Transposes move the heads axis,
the Q-K and weights-V MatMuls tie the heads of Q, K and V together (heads are a batch axis
there), Softmax runs within each head, and the Reshape merging heads back hands the out
projection its input columns head by head. So whole heads are pruned, Q, K and V alike.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from torch import nn

from engine.bridge.module import OnnxModule, Step
from engine.bridge.range_rules import RangeRules
from engine.bridge.spaces import Layout, Spaces
from engine.bridge.walker_state import ConstantSlice, KeptWhole, Shapes

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
# Layers whose channels the walk understands; any other layer keeps its inputs whole.
CHANNEL_LAYERS = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)
# Ops that read only a tensor's dims, never its values.
DIMS_ONLY = frozenset({"Shape", "Size"})


@dataclass
class ChannelGraph:
    """The result: spaces, and the layout of every tensor that has one."""

    spaces: Spaces
    layouts: dict[str, Layout]
    kept_whole: list[KeptWhole]
    constant_slices: list[ConstantSlice]
    ranges: dict[str, list[tuple[int, int]]]

    @property
    def kept_whole_by(self) -> set[str]:
        """The reasons groups were kept whole."""
        return {kept.reason for kept in self.kept_whole}


class _Walker(RangeRules):
    """The walk over the steps: layers start channel spaces, other ops carry, merge or freeze them."""

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
        if channel < start or (channel > start and layout.tile > 1):
            self.freeze_inputs(step)
            return None
        inner = math.prod(shape[channel + 1 :])
        # Dims merged from before the channel axis (channels moved last, then flattened) tile it.
        tile = math.prod(shape[start:channel]) * layout.tile
        return Layout(-1, tuple((s, r * inner) for s, r in layout.segments), tile=tile)

    def layer(self, step: Step, layer: nn.Module) -> None:
        excluded = step.name in self.exclude
        if excluded:
            self.keep_whole(step.name, "excluded nodes")
        if not isinstance(layer, CHANNEL_LAYERS):
            # Recurrent layers and others: their inputs are kept whole, their outputs start no space.
            # (An LSTM whose sequence output nobody reads has an empty first output name.)
            self.freeze_inputs(step)
            return
        source, out = self.layouts.get(step.inputs[-1]), step.outputs[0]
        rank = len(self.shapes[out])
        if isinstance(layer, nn.modules.conv._ConvNd) and source and source.axis != 1 - rank:
            self.freeze(source, "convolution over a non-channel axis", step.name)
            source = None
        if isinstance(layer, nn.modules.conv._ConvTransposeNd):
            if layer.groups > 1:
                self.freeze(source, "grouped ConvTranspose", step.name)
            self.fresh(out, 1 - rank, excluded or layer.groups > 1)
        elif isinstance(layer, nn.Linear):
            if source and source.axis != -1:
                self.freeze(source, "MatMul / Gemm over a non-channel axis", step.name)
            self.fresh(out, -1, excluded)
        elif isinstance(layer, nn.modules.conv._ConvNd):
            depthwise = layer.groups == layer.in_channels == layer.out_channels and layer.groups > 1
            if depthwise and source is not None:
                if excluded:
                    self.freeze(source, "excluded nodes", step.name)
                self.layouts[out] = source
                return
            if layer.groups > 1:
                self.freeze(source, "grouped Conv", step.name)
                self.keep_whole(step.name, "grouped Conv")
            self.fresh(out, 1 - rank, excluded or layer.groups > 1)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and source and source.axis == 1 - rank:
            self.layouts[out] = source
        else:
            self.freeze_inputs(step)

    def reads_tiled(self, step: Step, layer: nn.Module | None) -> bool:
        """Whether a step can read a tiled layout: a Linear layer (its columns), a unary channelwise
        op, or a Flatten (which leaves an already flat axis as it is)."""
        if isinstance(layer, nn.Linear):
            return True
        unary = layer is None and len([n for n in step.inputs if n]) == 1
        return unary and (step.op in CHANNELWISE or step.op == "Flatten")

    def channel_norm(self, step: Step, layout: Layout) -> Layout | None:
        """Each channel normalized on its own: its scale, bias (and statistics) entries go with it."""
        # InstanceNormalization reads (scale, bias); a BatchNormalization left functional (its
        # input rank unknown when the model was built) reads (scale, bias, mean, var).
        indices = range(1, len(step.inputs))
        on_channels = layout.axis == 1 - len(self.shapes[step.inputs[0]])
        if not on_channels or any(step.consts[i] is None for i in indices):
            return None
        self.constant_slices += [ConstantSlice(step.name, i, 0, step.outputs[0]) for i in indices]
        return layout

    def step(self, step: Step, layer: nn.Module | None) -> None:
        operands = [n for n in step.inputs if n]
        if any(self.layouts[n].tile > 1 for n in operands if n in self.layouts) and not self.reads_tiled(
            step, layer
        ):
            return self.freeze_inputs(step)
        if layer is not None:
            return self.layer(step, layer)
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
            result = self.reshape(step, source) or self.tiled_flatten(step, source)
        elif step.op in ("Squeeze", "Unsqueeze") and source is not None:
            result = self.squeeze(step, source)
        elif step.op == "Transpose" and source is not None:
            result = self.transpose(step, source)
        elif step.op == "MatMul" and len(operands) == 2:
            result = self.matmul(step, operands)
        elif step.op in ("Split", "Slice") and source is not None:
            ranged = self.split(step, source) if step.op == "Split" else self.slice(step, source)
            if not ranged:
                self.freeze_inputs(step)
            return None
        elif step.op in ("InstanceNormalization", "BatchNormalization") and source is not None:
            result = self.channel_norm(step, source)
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
    # must be checked (engine/bridge/equivalence.py).
    walker = _Walker(shapes, exclude, module.opset, trust_dims)
    for step in module.steps:
        walker.step(step, module.layer_of(step))
    for spec in module.outputs:
        walker.freeze(walker.layouts.get(spec.name), "graph outputs", spec.name)
    kept = [KeptWhole(node, reason) for node, reason in walker.kept_whole.items()]
    return ChannelGraph(walker.spaces, walker.layouts, kept, walker.constant_slices, walker.ranges)
