"""The bridged model: a plain nn.Module that runs an ONNX graph's nodes in topological order."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.bridge import shape_lane
from engine.bridge.registry import HANDLERS, Call


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, ONNX element type, dims (int, symbolic name, or None)."""

    name: str
    elem_type: int
    shape: tuple[int | str | None, ...] | None


@dataclass
class Step:
    """One node to run: its op, the values it reads and writes, and the layer holding its weights."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    consts: list[np.ndarray | None] = field(default_factory=list)
    layer: str | None = None


RESERVED_KEYS = frozenset(dir(nn.ModuleDict())) | frozenset(dir(nn.Module()))


def layer_key(name: str, taken: set[str]) -> str:
    """A unique attribute-safe key for a node name."""
    base = re.sub(r"\W", "_", name) or "node"
    key, n = base, 1
    # A node called `half` or `keys` would shadow a method of the module holding it.
    while key in taken or key in RESERVED_KEYS:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


class OnnxModule(nn.Module):
    """An ONNX graph as a trainable module: weights live in `layers`, other constants in buffers."""

    def __init__(
        self,
        steps: list[Step],
        layers: dict[str, nn.Module],
        constants: dict[str, np.ndarray],
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        opset: int,
    ) -> None:
        super().__init__()
        self.steps = steps
        self.layers = nn.ModuleDict(layers)
        self.constants = nn.Module()
        self.constant_keys: dict[str, str] = {}
        taken: set[str] = set()
        for name, value in constants.items():
            key = layer_key(name, taken)
            tensor = torch.from_numpy(np.array(value, copy=True))
            if tensor.numel() == 0:
                # numpy's empty arrays come with zero strides, which torch.export.save cannot package
                # ("numel: integer multiplication overflow"); paddle2onnx writes such Resize inputs.
                tensor = torch.empty(tensor.shape, dtype=tensor.dtype)
            self.constants.register_buffer(key, tensor)
            self.constant_keys[name] = key
        self.inputs = inputs
        self.outputs = outputs
        self.opset = opset
        # Symbolic dims of example inputs (engine/bridge/export.py): a size and batch it runs at.
        self.example_size, self.example_batch = 16, 2
        # Set while torch.export traces: computed shapes travel as sizes (engine/bridge/shape_lane.py).
        self.trace_shapes = False

    def layer_of(self, step: Step) -> nn.Module | None:
        """The nn layer that holds a step's weights, if any."""
        return self.layers[step.layer] if step.layer is not None else None

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Run the graph; one output is returned bare, several as a tuple in graph order."""
        values = self.run(inputs)
        results = tuple(values[spec.name] for spec in self.outputs)
        return results[0] if len(results) == 1 else results

    def run(self, inputs: tuple[Tensor, ...] | list[Tensor]) -> dict[str, Tensor]:
        """Run the graph and return every named value it computed."""
        if len(inputs) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs, got {len(inputs)}")
        values: dict[str, Tensor] = {spec.name: x for spec, x in zip(self.inputs, inputs, strict=True)}
        for name, key in self.constant_keys.items():
            values[name] = getattr(self.constants, key)
        lane: dict[str, shape_lane.Sizes] = {}
        for step in self.steps:
            read: list[Tensor | None] = [values[name] if name else None for name in step.inputs]
            known = self._known_sizes(step, lane) if self.trace_shapes else []
            if known:
                computed = shape_lane.evaluate(step.op, known, read, step.attrs)
                if computed is not None:
                    lane[step.outputs[0]] = computed
                    values[step.outputs[0]] = computed.tensor()
                    continue
            call = Call(
                inputs=read,
                consts=step.consts,
                attrs=step.attrs,
                layer=self.layer_of(step),
                n_outputs=len(step.outputs),
                opset=self.opset,
                sizes=known,
            )
            result = HANDLERS[step.op](call)
            produced = (result,) if isinstance(result, Tensor) else tuple(result)
            for name, value in zip(step.outputs, produced, strict=False):
                if name:
                    values[name] = value
        return values

    @staticmethod
    def _known_sizes(step: Step, lane: dict[str, shape_lane.Sizes]) -> list[shape_lane.Known]:
        """Each input of the step as sizes: from the lane, or a small integer constant."""
        known: list[shape_lane.Known] = []
        for position, name in enumerate(step.inputs):
            const = step.consts[position] if position < len(step.consts) else None
            known.append(lane.get(name) if const is None else shape_lane.of_constant(const))
        return known
