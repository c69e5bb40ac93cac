"""Channel spaces: sets of channels pruned together, and how a tensor's channel axis is made of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layout:
    """A tensor's channel axis (negative, from the end) as (space, repeat) segments in order.

    `tile` > 1: the segments repeat that many times along the axis, as when a channels-last
    tensor is flattened (channel c at c, c + C, c + 2C, ...); only a Linear layer may read it.
    """

    axis: int
    segments: tuple[tuple[int, int], ...]
    tile: int = 1


@dataclass
class Spaces:
    """Union-find over channel spaces; a frozen root is never pruned."""

    # `grain`: how many channels of the layer that made a space one of its elements stands for
    # (an attention head of 16 channels has grain 16). `retired`: spaces replaced by finer or
    # coarser ones (_Walker.refine in channels.py) that no tensor refers to any more.
    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)
    grain: dict[int, int] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)

    def new(self, size: int, frozen: bool = False, grain: int = 1) -> int:
        """A fresh space of `size` channels (or groups of `grain` channels)."""
        space = len(self.parent)
        self.parent.append(space)
        self.size.append(size)
        if frozen:
            self.frozen.add(space)
        if grain > 1:
            self.grain[space] = grain
        return space

    def find(self, space: int) -> int:
        """The space's representative."""
        while self.parent[space] != space:
            self.parent[space] = self.parent[self.parent[space]]
            space = self.parent[space]
        return space

    def union(self, a: int, b: int) -> None:
        """Merge two equal-size spaces (a frozen one freezes the result)."""
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            if b in self.frozen:
                self.frozen.add(a)
            if b in self.grain or a in self.grain:
                self.grain[a] = math.lcm(self.grain.get(a, 1), self.grain.get(b, 1))

    def freeze(self, layout: Layout | None) -> None:
        """Keep every channel of every space in a layout."""
        for space, _ in layout.segments if layout else ():
            self.frozen.add(self.find(space))

    def roots(self) -> set[int]:
        """The representative of every live group."""
        return {self.find(space) for space in range(len(self.parent))} - self.retired

    def is_frozen(self, space: int) -> bool:
        """Whether the space's group must be kept whole."""
        return self.find(space) in self.frozen
