"""A small recurrent model built with onnx.helper, for the int8 techniques' LSTM paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HIDDEN, FEATURES, STEPS = 32, 16, 50


def write_lstm(path: Path, dead_feature_weight: float | None = None) -> Path:
    """x (batch, steps, features) -> an LSTM -> its last hidden state; gate rows differ 100x in scale.

    With `dead_feature_weight`, every gate reads feature 0 with that weight: an input that is always
    zero (padding) costs nothing in float, but it sets every row's int8 scale, so the real weights
    round to a few levels.
    """
    rng = np.random.default_rng(0)
    rows = np.geomspace(0.01, 1.0, 4 * HIDDEN).astype(np.float32)[:, None]
    weight = (rng.normal(0, 1, (1, 4 * HIDDEN, FEATURES)) * rows).astype(np.float32)
    if dead_feature_weight is not None:
        weight = (rng.normal(0, 0.3, weight.shape)).astype(np.float32)
        weight[..., 0] = dead_feature_weight
    recurrent = (rng.normal(0, 1, (1, 4 * HIDDEN, HIDDEN)) * rows * 0.3).astype(np.float32)
    if dead_feature_weight is not None:
        recurrent = rng.normal(0, 0.3, recurrent.shape).astype(np.float32)
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    graph = helper.make_graph(
        [
            # Samples come first in a dataset; the LSTM wants time steps first.
            helper.make_node("Transpose", ["x"], ["steps_first"], perm=[1, 0, 2], name="to_steps"),
            helper.make_node(
                "LSTM", ["steps_first", "W", "R"], ["", "last"], hidden_size=HIDDEN, name="lstm"
            ),
            helper.make_node("Squeeze", ["last", "axes"], ["y"], name="drop_direction"),
        ],
        "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", STEPS, FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", HIDDEN])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(recurrent, "R"), axes],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def dead_feature_inputs(samples: int, seed: int = 0) -> np.ndarray:
    """Inputs for `write_lstm(..., dead_feature_weight)`: normal features, feature 0 always zero."""
    x = np.random.default_rng(seed).normal(0, 1, (samples, STEPS, FEATURES)).astype(np.float32)
    x[..., 0] = 0.0
    return x


class SpeakerEncoder(torch.nn.Module):
    """A small LSTM speaker encoder: frames -> LSTM -> last state -> linear embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        self.project = torch.nn.Linear(HIDDEN, 8)
        with torch.no_grad():
            # Gate rows 100x apart in scale, as trained recurrent weights often are: per-tensor int8 suffers.
            rows = torch.logspace(-2, 0, 4 * HIDDEN)[:, None]
            self.lstm.weight_ih_l0.mul_(rows * 3)
            self.lstm.weight_hh_l0.mul_(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.project(out[:, -1])


def write_speaker_encoder(path: Path) -> Path:
    """The encoder exported to ONNX (LSTM then Gemm), batch dimension dynamic."""
    torch.manual_seed(0)
    model = SpeakerEncoder().eval()
    example = torch.randn(4, STEPS, FEATURES)
    torch.onnx.export(
        model, (example,), str(path), input_names=["x"], dynamic_axes={"x": {0: "batch"}}, dynamo=False
    )
    return path
