"""Which input dims an exported program accepts at any size, and which only within a range."""

from __future__ import annotations

from typing import Any

Bounds = dict[str, dict[str, list[int]]]


def input_dims(program: Any, names: list[str]) -> tuple[dict[str, list[int]], Bounds]:
    """(input name -> axes free at any size, input name -> {axis: [low, high]} for axes torch bounded).

    torch.export keeps a dim symbolic but narrows its range when the graph's shape constraints
    (an upsampled map concatenated with a skip connection) hold only on an interval it can prove.
    """
    import sympy
    import torch

    user = {spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"}
    values = [
        node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder" and node.name in user
    ]
    free: dict[str, list[int]] = {}
    bounded: Bounds = {}
    for name, value in zip(names, values, strict=False):
        if value is None:
            continue
        free[name] = []
        for axis, size in enumerate(value.shape):
            if not isinstance(size, torch.SymInt):
                continue
            limits = program.range_constraints.get(size.node.expr)
            upper = getattr(limits, "upper", None)
            if upper is not None and isinstance(upper, sympy.Integer):
                bounded.setdefault(name, {})[str(axis)] = [int(limits.lower), int(upper)]
            else:
                free[name].append(axis)
    return free, bounded
