"""Channel spaces: sets of channels pruned together, and how a tensor's channel axis is made of them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layout:
    """A tensor's channel axis (negative, from the end) as (space, repeat) segments in order."""

    axis: int
    segments: tuple[tuple[int, int], ...]


@dataclass
class Spaces:
    """Union-find over channel spaces; a frozen root is never pruned."""

    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)

    def new(self, size: int, frozen: bool = False) -> int:
        """A fresh space of `size` channels."""
        self.parent.append(len(self.parent))
        self.size.append(size)
        if frozen:
            self.frozen.add(len(self.parent) - 1)
        return len(self.parent) - 1

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

    def freeze(self, layout: Layout | None) -> None:
        """Keep every channel of every space in a layout."""
        for space, _ in layout.segments if layout else ():
            self.frozen.add(self.find(space))

    def is_frozen(self, space: int) -> bool:
        """Whether the space's group must be kept whole."""
        return self.find(space) in self.frozen
