"""The op registry: one torch function per ONNX op type, and what each handler is given."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

Result = Tensor | Sequence[Tensor]
Handler = Callable[["Call"], Result]
Validator = Callable[[Mapping[str, Any]], str | None]

HANDLERS: dict[str, Handler] = {}
VALIDATORS: dict[str, Validator] = {}


def op(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for one or more ONNX op types."""

    def register(handler: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = handler
        return handler

    return register


def validator(*names: str) -> Callable[[Validator], Validator]:
    """Register a check of a node's attributes; it returns why the node is unsupported, or None."""

    def register(check: Validator) -> Validator:
        for name in names:
            VALIDATORS[name] = check
        return check

    return register


@dataclass(frozen=True)
class Call:
    """One node's inputs (tensors and, where known before running, their values) and attributes."""

    inputs: Sequence[Tensor | None]
    consts: Sequence[np.ndarray | None]
    attrs: Mapping[str, Any]
    layer: nn.Module | None
    n_outputs: int
    opset: int
    # Inputs known as sizes while torch.export traces (engine/bridge/shape_lane.py), else empty.
    sizes: Sequence[Any] = ()

    def x(self, index: int = 0) -> Tensor:
        """A required input."""
        value = self.inputs[index] if index < len(self.inputs) else None
        if value is None:
            raise ValueError(f"input {index} is missing")
        return value

    def has(self, index: int) -> bool:
        """Whether an optional input is present."""
        return index < len(self.inputs) and self.inputs[index] is not None

    def const(self, index: int) -> np.ndarray | None:
        """The value of an input known before running (an initializer or a folded constant)."""
        return self.consts[index] if index < len(self.consts) else None

    def ints(self, index: int) -> list[Any]:
        """An int64 input as a list usable as torch sizes; traced values stay dynamic when exporting."""
        known = self.const(index)
        if known is not None:
            return [int(v) for v in known.reshape(-1)]
        traced = self.traced_sizes(index)
        if traced is not None:
            return traced
        return sizes(self.x(index))

    def traced_sizes(self, index: int) -> list[Any] | None:
        """A computed int input as Python ints / SymInts, where the shape lane knows it (torch.export)."""
        known = self.sizes[index] if index < len(self.sizes) else None
        return None if known is None else list(known.values)

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute, or the default when the node does not set it."""
        return self.attrs.get(name, default)


def sizes(values: Tensor) -> list[Any]:
    """A 1-D int tensor as a size list; under the ONNX tracer, 0-d tensors keep the trace dynamic."""
    if torch.jit.is_tracing():
        return list(values.reshape(-1).unbind(0))
    return [int(v) for v in values.reshape(-1).tolist()]


def axis_of(axis: int, rank: int) -> int:
    """A possibly negative axis as a non-negative one."""
    return axis + rank if axis < 0 else axis
