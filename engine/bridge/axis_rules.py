"""How channels go through ops that move axes: reshapes (attention heads), transposes, reductions."""

from __future__ import annotations

import math

from engine.bridge.module import Step
from engine.bridge.spaces import Layout
from engine.bridge.walker_state import WalkerState


class AxisRules(WalkerState):
    """The channel layout after an op that moves, splits or merges axes; None where it cannot follow."""

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
                self.layouts[tensor] = Layout(layout.axis, tuple(segments), layout.tile)
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
            # The axis takes `factor` from the inner dims (row-major): channel c becomes channels
            # c * factor ... c * factor + factor - 1, as heads merged back or a GroupNorm's groups.
            factor = after[q] // width
            if rest * factor == inner:
                return Layout(axis, tuple((space, repeat * factor) for space, repeat in layout.segments))
            return None
        if after[q] < width and width % after[q] == 0 and rest == (width // after[q]) * inner:
            split = self.split_heads(layout, after[q])
            return None if split is None else Layout(axis, split.segments)
        return None

    def tiled_flatten(self, step: Step, layout: Layout) -> Layout | None:
        """A reshape merging the channel axis with outer dims (a flatten after moving channels last)."""
        before, after = self.shapes[step.inputs[0]], self.shapes[step.outputs[0]]
        position = len(before) + layout.axis
        prefix, width = math.prod(before[:position]), before[position]
        inner = math.prod(before[position + 1 :])
        for q in range(len(after)):
            outer, left = divmod(prefix, math.prod(after[:q]))
            if left or outer < 2 or after[q] % (outer * width):
                continue
            factor = after[q] // (outer * width)  # inner dims merged in too: each channel repeats
            if factor * math.prod(after[q + 1 :]) == inner and layout.tile == 1:
                segments = tuple((space, repeat * factor) for space, repeat in layout.segments)
                return Layout(q - len(after), segments, tile=outer)
        return None

    def transpose(self, step: Step, layout: Layout) -> Layout:
        """The channel axis where the permutation puts it."""
        rank = len(self.shapes[step.inputs[0]])
        perm = step.attrs.get("perm") or list(reversed(range(rank)))
        return Layout(list(perm).index(rank + layout.axis) - rank, layout.segments)

    def squeeze(self, step: Step, layout: Layout) -> Layout | None:
        """Squeeze / Unsqueeze of other axes: the channel axis keeps its width and may move."""
        before, after = self.shapes[step.inputs[0]], self.shapes[step.outputs[0]]
        constant = step.consts[1] if len(step.consts) > 1 else None
        if len(step.inputs) > 1 and step.inputs[1] and constant is None:
            return None  # axes computed at run time
        axes = constant.reshape(-1).tolist() if constant is not None else step.attrs.get("axes")
        channel = len(before) + layout.axis
        if step.op == "Unsqueeze":
            inserted = {int(a) % len(after) for a in axes or ()}
            position = [d for d in range(len(after)) if d not in inserted][channel]
            return Layout(position - len(after), layout.segments)
        # Squeeze without axes drops every dim of size 1 (the channel axis too, if it is one wide).
        removed = (
            {int(a) % len(before) for a in axes} if axes else {d for d, n in enumerate(before) if n == 1}
        )
        if channel in removed:
            return None
        return Layout(
            -1 - sum(1 for d in range(channel + 1, len(before)) if d not in removed), layout.segments
        )

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
