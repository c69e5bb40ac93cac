"""The default rules ModelPress applies before int8 quantization, and the graph facts they rest on.

- LayerNorm outlier channels are smoothed into the weights they feed (int8/smoothing.py).
- In static mode with per_channel "auto", only Conv weights get one scale per output channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from engine.techniques.quantize.int8.smoothing import Smoothed, smooth_layernorm_outliers

# Weights whose per-channel scales onnxruntime's int8 kernels take without a slower path.
PER_CHANNEL_OP_TYPES = {"Conv"}


@dataclass
class Prepared:
    """The graph handed to the quantizer, and what the rules found in it."""

    path: Path
    smoothed: list[Smoothed] = field(default_factory=list)
    per_channel_weights: list[str] = field(default_factory=list)


def prepare(source: Path, target: Path, *, smooth: bool, large: bool) -> Prepared:
    """Apply the graph rules to `source`; the result is `target`, or `source` when nothing changed."""
    model = onnx.load(str(source), load_external_data=smooth)
    smoothed = smooth_layernorm_outliers(model) if smooth else []
    path = source
    if smoothed:
        path = target
        onnx.save(model, str(target), save_as_external_data=large, location=f"{target.name}.data")
    return Prepared(path, smoothed, per_channel_weights(model))


def per_channel_weights(model: onnx.ModelProto) -> list[str]:
    """Constant weights of the op types that take per-channel scales at no speed cost."""
    constants = {tensor.name for tensor in model.graph.initializer}
    return sorted(
        {
            node.input[1]
            for node in model.graph.node
            if node.op_type in PER_CHANNEL_OP_TYPES and len(node.input) > 1 and node.input[1] in constants
        }
    )
