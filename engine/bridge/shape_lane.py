"""Shapes as Python sizes while torch.export traces the bridge: `Shape` → `Gather` → `Concat` → `Reshape`.

ONNX computes shapes as int64 tensors; under torch.export a tensor's values are unknown, so a
`Reshape` reading one is data-dependent and the export fails. Here such small integer vectors are
also carried as lists of Python ints and torch SymInts, computed op by op, so the readers
(`Reshape`, `Expand`, `ConstantOfShape`, `Range`, ...) get sizes torch.export can keep symbolic.
Eager runs and the ONNX exporter do not use the lane: their tensors already hold the values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.bridge.dtypes import torch_dtype

# Values larger than this are not shapes (a table of indices, a lookup): they stay tensors.
MAX_SIZES = 16


@dataclass(frozen=True)
class Sizes:
    """A 0-d or 1-d integer value as Python ints / SymInts."""

    values: tuple[Any, ...]
    scalar: bool = False
    dtype: torch.dtype = torch.int64

    def tensor(self) -> Tensor:
        """The value as a tensor built from its sizes (which torch.export traces symbolically)."""
        parts = [torch.scalar_tensor(v, dtype=self.dtype) for v in self.values]
        if self.scalar:
            return parts[0]
        return torch.stack(parts) if parts else torch.zeros(0, dtype=self.dtype)


Known = Sizes | None


@dataclass(frozen=True)
class Node:
    """One node as a rule sees it: its inputs as sizes (None where unknown), its tensors, its attributes."""

    known: Sequence[Known]
    inputs: Sequence[Tensor | None]
    attrs: dict[str, Any]


Rule = Callable[[Node], Known]
RULES: dict[str, Rule] = {}


def rule(*ops: str) -> Callable[[Rule], Rule]:
    """Register how an op computes sizes from sizes."""

    def register(function: Rule) -> Rule:
        for name in ops:
            RULES[name] = function
        return function

    return register


def of_constant(value: np.ndarray) -> Known:
    """A small integer constant as sizes."""
    if value.dtype.kind not in "iuf" or value.ndim > 1 or value.size > MAX_SIZES:
        return None
    convert = float if value.dtype.kind == "f" else int
    dtype = torch.from_numpy(np.array(value)).dtype
    return Sizes(tuple(convert(v) for v in value.reshape(-1)), value.ndim == 0, dtype)


def evaluate(
    op: str, known: Sequence[Known], inputs: Sequence[Tensor | None], attrs: dict[str, Any]
) -> Known:
    """The op's output as sizes when its rule can compute it from its inputs, else None."""
    compute = RULES.get(op)
    if compute is None or (op not in SOURCES and not any(k is not None for k in known)):
        return None
    present = [k for k, x in zip(known, inputs, strict=False) if x is not None]
    if op not in SOURCES and any(k is None for k in present[: ARITY.get(op, len(present))]):
        return None
    result = compute(Node(known, inputs, attrs))
    if result is not None and len(result.values) > MAX_SIZES:
        return None
    return result


# Ops that make sizes from a tensor that is not itself sizes.
SOURCES = {"Shape", "Size"}
# Ops whose leading inputs must all be sizes (the rest may be anything, e.g. Slice's optional axes).
ARITY = {"Gather": 2, "Slice": 5, "Squeeze": 2, "Unsqueeze": 2}


@rule("Shape")
def _shape(node: Node) -> Known:
    dims = tuple(node.inputs[0].shape)  # type: ignore[union-attr]
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return Sizes(dims[start:end])


@rule("Size")
def _size(node: Node) -> Known:
    return Sizes((node.inputs[0].numel(),), scalar=True)  # type: ignore[union-attr]


@rule("Identity")
def _identity(node: Node) -> Known:
    return node.known[0]


@rule("Cast")
def _cast(node: Node) -> Known:
    target = torch_dtype(node.attrs["to"])
    source = node.known[0]
    if source is None or target == torch.bool:
        return None
    if target.is_floating_point:  # a size as a float, e.g. the end of a Range of grid coordinates
        return Sizes(tuple(map(_as_float, source.values)), source.scalar, target)
    if source.dtype.is_floating_point:
        return None  # float to int rounds per ONNX rules: the tensor path does that
    return Sizes(source.values, source.scalar, target)


def _as_float(value: Any) -> Any:
    return torch.sym_float(value) if isinstance(value, torch.SymInt) else float(value)


@rule("Gather")
def _gather(node: Node) -> Known:
    data, index = node.known[0], node.known[1]
    if data is None or index is None or data.scalar or node.attrs.get("axis", 0) not in (0, -1):
        return None
    count = len(data.values)
    picked = tuple(data.values[i + count if i < 0 else i] for i in index.values)
    return Sizes(picked, index.scalar, data.dtype)


@rule("Unsqueeze")
def _unsqueeze(node: Node) -> Known:
    source = node.known[0]
    return Sizes(source.values, False, source.dtype) if source is not None and source.scalar else None


@rule("Squeeze")
def _squeeze(node: Node) -> Known:
    source = node.known[0]
    if source is None or source.scalar or len(source.values) != 1:
        return None
    return Sizes(source.values, True, source.dtype)


@rule("Concat")
def _concat(node: Node) -> Known:
    parts = [k for k, x in zip(node.known, node.inputs, strict=False) if x is not None]
    if any(part is None or part.scalar for part in parts):
        return None
    values = tuple(v for part in parts for v in part.values)  # type: ignore[union-attr]
    return Sizes(values, False, parts[0].dtype)  # type: ignore[union-attr]


@rule("Slice")
def _slice(node: Node) -> Known:
    source, bounds = node.known[0], node.known[1:3]
    if source is None or source.scalar or len(bounds) < 2 or bounds[0] is None or bounds[1] is None:
        return None
    starts, ends = bounds[0].values, bounds[1].values
    steps = node.known[4].values if len(node.known) > 4 and node.known[4] is not None else (1,)
    if len(starts) != 1 or any(isinstance(v, torch.SymInt) for v in (*starts, *ends, *steps)):
        return None  # only one axis: a 1-D value
    # Python slicing clamps like ONNX Slice does.
    return Sizes(source.values[slice(starts[0], ends[0], steps[0])], False, source.dtype)


def _elementwise(combine: Callable[[Any, Any], Any]) -> Rule:
    def compute(node: Node) -> Known:
        a, b = node.known[0], node.known[1]
        if a is None or b is None:
            return None
        if len(a.values) != len(b.values) and 1 not in (len(a.values), len(b.values)):
            return None
        width = max(len(a.values), len(b.values))
        left = a.values * width if len(a.values) == 1 else a.values
        right = b.values * width if len(b.values) == 1 else b.values
        return Sizes(tuple(map(combine, left, right)), a.scalar and b.scalar, a.dtype)

    return compute


def _divide(a: Any, b: Any) -> Any:
    """True division for floats, ONNX's truncating integer division otherwise."""
    if isinstance(a, float | torch.SymFloat) or isinstance(b, float | torch.SymFloat):
        return a / b
    return _truncating(a, b)


def _truncating(a: Any, b: Any) -> Any:
    """ONNX integer Div truncates toward zero; symbolic sizes are non-negative: floor division."""
    if isinstance(a, int) and isinstance(b, int):
        quotient = abs(a) // abs(b)
        return quotient if (a < 0) == (b < 0) else -quotient
    return a // b


RULES["Add"] = _elementwise(operator.add)
RULES["Sub"] = _elementwise(operator.sub)
RULES["Mul"] = _elementwise(operator.mul)
RULES["Div"] = _elementwise(_divide)
