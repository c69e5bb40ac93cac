"""Outlier smoothing before int8: a LayerNorm's outlier channels move into the weights it feeds.

Trained transformers often have a few LayerNorm output channels far larger than the rest, set by the
LayerNorm's own scale and bias (Kovaleva et al. 2021, "BERT Busters"). int8 activations get one scale
per tensor, so those channels set it and every other channel is left a few levels: per-channel
*weights* cannot help, the error is on the activation side. Dividing channel j of the LayerNorm's
scale and bias by s_j and multiplying row j of every MatMul/Gemm weight it feeds by s_j leaves the
float function unchanged and splits the range between activations and weights (SmoothQuant, Xiao et
al. 2023, alpha 0.5). Channel ranges are estimated from the LayerNorm's parameters (3|gamma| + |beta|,
a normalized input rarely exceeding 3), so no data are needed and dynamic quantization can use it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from engine.techniques.quantize.int8.smoothing_paths import ChannelPath, GraphIndex, channel_path

# A LayerNorm is smoothed when its largest estimated channel range is this many times the median:
# below it per-tensor int8 activations hold up (bench/RESULTS.md), and the graph is left untouched.
OUTLIER_RATIO = 8.0
ALPHA = 0.5
_TYPICAL_NORMALIZED_MAX = 3.0
SUFFIX = "_smoothed"


@dataclass(frozen=True)
class Smoothed:
    """One LayerNorm whose outlier channels were moved into the weights it feeds."""

    layernorm: str
    ratio_before: float
    ratio_after: float
    weights_of: list[str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record for a step's metrics."""
        return {
            "layernorm": self.layernorm,
            "channel_range_ratio_before": round(self.ratio_before, 1),
            "channel_range_ratio_after": round(self.ratio_after, 1),
            "weights_of": self.weights_of,
        }


def smooth_layernorm_outliers(model: onnx.ModelProto) -> list[Smoothed]:
    """Smooth, in place, every LayerNorm with outlier channels whose output only feeds MatMul weights."""
    index = GraphIndex(model)
    done = []
    for node in list(model.graph.node):
        parameters = _parameters(index, node)
        if parameters is None:
            continue
        gamma, beta = parameters
        estimate = _TYPICAL_NORMALIZED_MAX * np.abs(gamma) + np.abs(beta)
        if _ratio(estimate) < OUTLIER_RATIO:
            continue
        path = channel_path(index, node.output[0])
        if path is None:
            continue
        done.append(_apply(index, node, path, estimate))
        _rename(model.graph, path.tensors)
    return done


def _parameters(index: GraphIndex, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """A last-axis LayerNorm's scale and bias, when both are constants no other node reads."""
    if node.op_type != "LayerNormalization":
        return None
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    names = [name for name in node.input[1:3] if name]
    if axis != -1 or not all(name in index.initializers and index.readers(name) == 1 for name in names):
        return None
    gamma = numpy_helper.to_array(index.initializers[node.input[1]]).astype(np.float64)
    beta = np.zeros_like(gamma)
    if len(names) > 1:
        beta = numpy_helper.to_array(index.initializers[names[1]]).astype(np.float64)
    return (gamma, beta) if gamma.ndim == 1 and beta.shape == gamma.shape else None


def _apply(index: GraphIndex, node: onnx.NodeProto, path: ChannelPath, estimate: np.ndarray) -> Smoothed:
    """Divide the LayerNorm's channels by SmoothQuant's factors and multiply the weights' rows by them."""
    weights = [numpy_helper.to_array(index.initializers[use.weight]).astype(np.float64) for use in path.uses]
    rows = [
        np.abs(np.moveaxis(weight, use.axis, 0)).reshape(estimate.size, -1).max(1)
        for weight, use in zip(weights, path.uses, strict=True)
    ]
    scale = _scales(estimate, np.max(rows, axis=0))
    for name in node.input[1:3]:
        if name:
            tensor = index.initializers[name]
            _put(tensor, numpy_helper.to_array(tensor).astype(np.float64) / scale)
    for weight, use in zip(weights, path.uses, strict=True):
        shape = [1] * weight.ndim
        shape[use.axis] = estimate.size
        _put(index.initializers[use.weight], weight * scale.reshape(shape))
    readers = [use.node.name for use in path.uses]
    return Smoothed(node.name, _ratio(estimate), _ratio(estimate / scale), readers)


def _scales(activation: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """SmoothQuant's per-channel factors, normalized so a typical channel keeps its scale."""
    usable = (activation > 0) & (weight > 0)
    scale = np.ones_like(activation)
    scale[usable] = activation[usable] ** ALPHA / weight[usable] ** (1 - ALPHA)
    scale /= np.median(scale[usable]) if usable.any() else 1.0
    return np.clip(scale, 1e-4, 1e4)


def _ratio(estimate: np.ndarray) -> float:
    median = float(np.median(estimate))
    return float(estimate.max()) / median if median > 0 else float("inf")


def _put(tensor: onnx.TensorProto, values: np.ndarray) -> None:
    dtype = numpy_helper.to_array(tensor).dtype
    tensor.CopyFrom(numpy_helper.from_array(values.astype(dtype), tensor.name))


def _rename(graph: onnx.GraphProto, tensors: list[str]) -> None:
    """Rename the scaled tensors, so per-node error reports never match them with the float model's."""
    renamed = {name: name + SUFFIX for name in tensors}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for info in graph.value_info:
        info.name = renamed.get(info.name, info.name)


def smoothing_warnings(smoothed: list[Smoothed]) -> list[str]:
    """One line telling the user that LayerNorm parameters and the weights they feed were rescaled."""
    if not smoothed:
        return []
    worst = max(item.ratio_before for item in smoothed)
    return [
        f"{len(smoothed)} LayerNorm(s) had outlier channels (widest {worst:.0f}x the median channel), which"
        " per-tensor int8 activations cannot represent; their range was moved into the weights they feed"
        " (SmoothQuant; the float function is unchanged, intermediate tensors are renamed *_smoothed)."
        " smooth_outliers=false turns this off"
    ]
