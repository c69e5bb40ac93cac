"""How channels go through Split and Slice: each output takes a range of its input's channels.

As in Torch-Pruning's dependency graph, a range that cuts through a channel space splits that
space in two (in every tensor that holds it, the producer's output included), so a channel
pruned in one output is removed from the producer and the later ranges shift down.
"""

from __future__ import annotations

from engine.bridge.axis_rules import AxisRules
from engine.bridge.module import Step
from engine.bridge.spaces import Layout


class RangeRules(AxisRules):
    """Layouts of the outputs of ops that take channel ranges; False where the ranges cannot be followed."""

    def cut(self, tensor: str, position: int) -> bool:
        """Make `position` of the tensor's channel axis a boundary between spaces."""
        layout, start = self.layouts[tensor], 0
        for space, repeat in layout.segments:
            size = self.spaces.size[space]
            if start < position < start + size * repeat:
                root = self.spaces.find(space)
                if (position - start) % repeat or root in self.spaces.grain:
                    return False  # inside a repeated channel, or inside an attention head
                head = (position - start) // repeat
                frozen = root in self.spaces.frozen
                parts = [(self.spaces.new(head, frozen), 1), (self.spaces.new(size - head, frozen), 1)]
                self.refine(root, parts)
                return True
            start += size * repeat
        return True

    def take(self, tensor: str, ranges: list[tuple[int, int]]) -> list[Layout] | None:
        """The layouts of channel ranges of a tensor, cutting spaces at the range ends."""
        if not all(self.cut(tensor, p) for r in ranges for p in r):
            return None
        layout, found = self.layouts[tensor], []
        for first, last in ranges:
            segments, start = [], 0
            for space, repeat in layout.segments:
                if first <= start < last:
                    segments.append((space, repeat))
                start += self.spaces.size[space] * repeat
            found.append(Layout(layout.axis, tuple(segments)))
        return found

    def spread(self, step: Step, layout: Layout, axis: int, ranges: list[tuple[int, int]]) -> bool:
        """Give each output its range of the input's channels (or the whole layout off the channel axis)."""
        rank = len(self.shapes[step.inputs[0]])
        if (axis % rank) - rank != layout.axis:
            self.layouts.update((name, layout) for name in step.outputs)  # every channel goes everywhere
            return True
        if any(last <= first for first, last in ranges):
            return False
        layouts = self.take(step.inputs[0], ranges)
        if layouts is None:
            return False
        self.ranges[step.name] = ranges
        self.layouts.update(zip(step.outputs, layouts, strict=True))
        return True

    def split(self, step: Step, layout: Layout) -> bool:
        """Split: consecutive ranges, one per output."""
        if not all(step.outputs) or not all(name in self.shapes for name in step.outputs):
            return False
        axis = step.attrs.get("axis", 0)
        ranges, start = [], 0
        for name in step.outputs:
            width = self.shapes[name][axis]
            ranges.append((start, start + width))
            start += width
        return self.spread(step, layout, axis, ranges)

    def slice(self, step: Step, layout: Layout) -> bool:
        """Slice with constant bounds: one range on the channel axis, with step 1."""
        if len(step.inputs) > 1:
            values = [c.reshape(-1).tolist() if c is not None else None for c in step.consts[1:5]]
            if any(v is None and name for v, name in zip(values, step.inputs[1:5], strict=False)):
                return False  # bounds computed at run time
            starts, ends, axes, steps = (values + [None, None])[:4]
            if starts is None or ends is None:
                return False
        else:
            starts, ends, axes, steps = step.attrs["starts"], step.attrs["ends"], step.attrs.get("axes"), None
        rank = len(self.shapes[step.inputs[0]])
        axes = [a % rank for a in (axes or range(len(starts)))]
        channel = rank + layout.axis
        if channel not in axes:
            self.layouts[step.outputs[0]] = layout  # cut along other axes only
            return True
        at = axes.index(channel)
        if steps is not None and steps[at] != 1:
            return False
        width = self.shapes[step.inputs[0]][channel]
        first, last = (min(max(b + width if b < 0 else b, 0), width) for b in (starts[at], ends[at]))
        return self.spread(step, layout, channel, [(first, last)])
