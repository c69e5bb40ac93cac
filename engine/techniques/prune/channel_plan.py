"""How many channels each prunable group keeps, and which: the uniform count, or a step of an
iterative schedule towards a final count, ranked by weight norms or by the data.

Groups are named by the first layer node that makes them, so a schedule made on the original
model still applies after earlier steps have pruned it (and the analysis has run again).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from engine.bridge import OnnxModule
from engine.bridge.channels import ChannelGraph
from engine.bridge.shrink import Plan

Scores = dict[int, np.ndarray]


def unit(graph: ChannelGraph, root: int, round_to: int) -> int:
    """The step kept counts of a group move in: round_to channels (whole heads for heads)."""
    grain = graph.spaces.grain.get(root, 1)
    return round_to // math.gcd(round_to, grain)


def round_up(count: float, step: int, size: int) -> int:
    """`count` rounded up to a multiple of `step`, at most `size`."""
    return min(size, step * math.ceil(count / step - 1e-9))


def group_names(module: OnnxModule, graph: ChannelGraph) -> dict[int, str]:
    """Each prunable group's name: the first layer node whose output holds it."""
    names: dict[int, str] = {}
    for step in module.steps:
        layout = graph.layouts.get(step.outputs[0]) if step.layer is not None else None
        for space, _ in layout.segments if layout else ():
            root = graph.spaces.find(space)
            if root not in graph.spaces.frozen and root not in graph.spaces.retired:
                names.setdefault(root, step.name)
    return names


def uniform(graph: ChannelGraph, roots: Mapping[int, str], sparsity: float, round_to: int) -> dict[str, int]:
    """Kept channels per group name: the same fraction of every group, rounded up."""
    return {
        name: round_up(
            graph.spaces.size[root] * (1 - sparsity), unit(graph, root, round_to), graph.spaces.size[root]
        )
        for root, name in roots.items()
    }


def stage_counts(
    sizes: Mapping[str, int], final: Mapping[str, int], stage: int, stages: int, steps: Mapping[str, int]
) -> dict[str, int]:
    """Kept channels after `stage` of `stages` equal steps from the original sizes to the final counts."""
    return {
        name: max(
            final[name],
            round_up(sizes[name] - (sizes[name] - final[name]) * stage / stages, steps[name], sizes[name]),
        )
        for name in final
    }


def from_counts(
    graph: ChannelGraph, names: Mapping[int, str], counts: Mapping[str, int], scores: Scores
) -> Plan:
    """Keep the top-ranked channels of each group, as many as its count says."""
    plan = Plan()
    for root, name in names.items():
        size, score = graph.spaces.size[root], scores.get(root)
        kept = min(size, counts.get(name, size))
        if kept < size and score is not None:
            plan.keep[root] = np.sort(np.argsort(-score, kind="stable")[:kept])
    return plan


Planner = Callable[[OnnxModule, ChannelGraph], Plan]
