"""Real-shaped graphs as other converters write them, built from the trained digits models.

`constant_weights` turns every initializer into a Constant node, the way paddle2onnx and older
TensorFlow exporters write weights; some reach their node through Identity, a Cast from float16
or a Reshape of a flat constant. `PaddedCNN` pads before its convolutions the way a pitch
estimator does ("same" padding as an explicit Pad without a fill value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn


def constant_weights(source: Path, destination: Path) -> Path:
    """Every initializer as a Constant node; weights go through Identity, Cast or Reshape in turn."""
    model = onnx.load(str(source))
    graph = model.graph
    lifted: list[onnx.NodeProto] = []
    weights = 0
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        raw = f"{tensor.name}__raw"
        route = 0
        if array.ndim >= 2:  # weights take the routes in turn: Identity, Cast, Reshape, plain
            weights += 1
            route = weights % 4
        if route == 1:  # Identity of a constant
            lifted += [_constant(raw, array), helper.make_node("Identity", [raw], [tensor.name])]
        elif (
            route == 2 and array.dtype == np.float32
        ):  # float16 weights cast up (exact when stored as float16)
            half = array.astype(np.float16)
            lifted += [
                _constant(raw, half),
                helper.make_node("Cast", [raw], [tensor.name], to=onnx.TensorProto.FLOAT),
            ]
        elif route == 3:  # a flat constant reshaped to the weight's shape
            shape = f"{tensor.name}__shape"
            lifted += [
                _constant(raw, array.reshape(-1)),
                _constant(shape, np.array(array.shape, dtype=np.int64)),
                helper.make_node("Reshape", [raw, shape], [tensor.name]),
            ]
        else:
            lifted.append(_constant(tensor.name, array))
    nodes = [*lifted, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    names = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in names]
    del graph.initializer[:]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))
    return destination


def _constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


class PaddedCNN(nn.Module):
    """Convolutions over explicitly padded inputs, as a pitch CNN pads its frames."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, width, 3)
        self.second = nn.Conv2d(width, width, 3)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.first(F.pad(x, [1, 1, 1, 1])))
        y = torch.relu(self.second(F.pad(y, [1, 1, 1, 1])))
        return self.head(y.mean(dim=(2, 3)))


class SpelledOutCNN(nn.Module):
    """PP-LCNet's shape: each Conv scaled and shifted by a learned scalar, HardSwish written out.

    paddle2onnx writes HardSwish as Add(3) → Clip(0, 6) → Mul → Div(6) and the learnable affine as
    a scalar Mul and Add, which onnxruntime runs as separate passes over the activations.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, width, 3, padding=1)
        self.second = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.scale = nn.Parameter(torch.tensor(1.5))
        self.shift = nn.Parameter(torch.tensor(0.25))
        self.head = nn.Linear(width * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _spelled_hardswish(self.first(x))
        y = _spelled_hardswish(self.second(y) * self.scale + self.shift)
        return self.head(y.flatten(1))


def _spelled_hardswish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.clamp(x + 3, 0, 6) / 6
