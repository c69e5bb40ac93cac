"""The state of the channel analysis while it walks a graph, and the moves every op rule makes."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from worker.bridge.module import Step
from worker.bridge.spaces import Layout, Spaces

Shapes = Mapping[str, tuple[int, ...]]


class WalkerState:
    """Spaces, each tensor's layout, and what kept groups whole, as the walk has found them so far."""

    def __init__(self, shapes: Shapes, exclude: Collection[str], opset: int, trust_dims: bool) -> None:
        self.shapes, self.exclude, self.opset, self.trust_dims = shapes, exclude, opset, trust_dims
        self.spaces = Spaces()
        self.layouts: dict[str, Layout] = {}
        self.kept_whole_by: set[str] = set()

    def fresh(self, tensor: str, axis: int, frozen: bool) -> None:
        """A new space for the tensor's channel axis."""
        size = self.shapes[tensor][axis]
        self.layouts[tensor] = Layout(axis, ((self.spaces.new(size, frozen), 1),))

    def freeze(self, layout: Layout | None, reason: str) -> None:
        """Keep a layout's channels whole, remembering what kept a prunable group whole."""
        if layout is not None and any(not self.spaces.is_frozen(space) for space, _ in layout.segments):
            self.kept_whole_by.add(reason)
        self.spaces.freeze(layout)

    def freeze_inputs(self, step: Step) -> None:
        """Keep whole every channel an op reads."""
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
