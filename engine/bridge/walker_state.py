"""The state of the channel analysis while it walks a graph, and the moves every op rule makes."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from engine.bridge.module import Step
from engine.bridge.spaces import Layout, Spaces

Shapes = Mapping[str, tuple[int, ...]]

# Element-wise ops whose constant operand may hold one value per channel, sliced with the channels.
PER_CHANNEL_OPS = frozenset("Add Sub Mul Div Pow Max Min PRelu Sum Mean".split())


@dataclass(frozen=True)
class ConstantSlice:
    """A constant input of a step holding one value per channel of `tensor` along its dim `dim`."""

    step: str
    index: int
    dim: int
    tensor: str


@dataclass(frozen=True)
class KeptWhole:
    """A node (or graph output) whose channels the analysis kept whole, and why."""

    node: str
    reason: str


class WalkerState:
    """Spaces, each tensor's layout, and what kept groups whole, as the walk has found them so far."""

    def __init__(self, shapes: Shapes, exclude: Collection[str], opset: int, trust_dims: bool) -> None:
        self.shapes, self.exclude, self.opset, self.trust_dims = shapes, exclude, opset, trust_dims
        self.spaces = Spaces()
        self.layouts: dict[str, Layout] = {}
        self.kept_whole: dict[str, str] = {}  # node -> reason, first reason wins
        self.constant_slices: list[ConstantSlice] = []
        # Channel ranges [start, end) of a step's input that each of its outputs takes (Split, Slice).
        self.ranges: dict[str, list[tuple[int, int]]] = {}

    @property
    def kept_whole_by(self) -> set[str]:
        """The reasons groups were kept whole."""
        return set(self.kept_whole.values())

    def fresh(self, tensor: str, axis: int, frozen: bool) -> None:
        """A new space for the tensor's channel axis."""
        size = self.shapes[tensor][axis]
        self.layouts[tensor] = Layout(axis, ((self.spaces.new(size, frozen), 1),))

    def keep_whole(self, node: str, reason: str) -> None:
        """Remember that a node kept a prunable group whole."""
        self.kept_whole.setdefault(node, reason)

    def freeze(self, layout: Layout | None, reason: str, node: str = "") -> None:
        """Keep a layout's channels whole, remembering which node kept a prunable group whole and why."""
        if layout is not None and any(not self.spaces.is_frozen(space) for space, _ in layout.segments):
            self.keep_whole(node or reason, reason)
        self.spaces.freeze(layout)

    def freeze_inputs(self, step: Step) -> None:
        """Keep whole every channel an op reads."""
        for name in step.inputs:
            self.freeze(self.layouts.get(name), step.op, step.name)

    def same_structure(self, one: Layout, other: Layout) -> bool:
        """Same axis, and segment by segment the same size and repeat."""
        if one.axis != other.axis or len(one.segments) != len(other.segments):
            return False
        pairs = zip(one.segments, other.segments, strict=True)
        return all(r1 == r2 and self.spaces.size[s1] == self.spaces.size[s2] for (s1, r1), (s2, r2) in pairs)

    def _per_channel(self, step: Step, index: int, axis: int, width: int) -> ConstantSlice | None:
        """The slice of a constant operand with one value per channel (a PReLU slope, a scale)."""
        if step.op not in PER_CHANNEL_OPS or index >= len(step.consts) or step.consts[index] is None:
            return None
        shape = self.shapes.get(step.inputs[index], ())
        if len(shape) < -axis or shape[axis] != width:
            return None
        return ConstantSlice(step.name, index, len(shape) + axis, step.outputs[0])

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
        sliced = []
        for index, name in enumerate(step.inputs):
            shape = self.shapes.get(name, ())
            if not name or name in self.layouts or len(shape) < -first.axis or shape[first.axis] == 1:
                continue
            found = self._per_channel(step, index, first.axis, width)
            aligned = aligned and found is not None
            sliced.append(found)
        if not aligned or width != sum(self.spaces.size[s] * r for s, r in first.segments):
            self.freeze_inputs(step)
            return None
        self.constant_slices += [s for s in sliced if s is not None]
        for other in present[1:]:
            for (a, _), (b, _) in zip(first.segments, other.segments, strict=True):
                self.spaces.union(a, b)
        return first
