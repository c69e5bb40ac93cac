"""Nodes with constant weights as real nn layers, so they train and can be pruned."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import onnx
import torch
from torch import nn

from engine.bridge.ops_conv_transpose import settings
from engine.bridge.ops_nn import symmetric

CONV_LAYERS: dict[int, Callable[..., nn.modules.conv._ConvNd]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
Layer = TypeVar("Layer", nn.Linear, nn.modules.conv._ConvNd)  # layers with a weight and an optional bias
CONV_TRANSPOSE_LAYERS: dict[int, Callable[..., nn.modules.conv._ConvTransposeNd]] = {
    1: nn.ConvTranspose1d,
    2: nn.ConvTranspose2d,
    3: nn.ConvTranspose3d,
}
BATCH_NORMS: dict[int, Callable[..., nn.modules.batchnorm._BatchNorm]] = {
    2: nn.BatchNorm1d,
    3: nn.BatchNorm1d,
    4: nn.BatchNorm2d,
    5: nn.BatchNorm3d,
}


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True))


def _set(param: torch.nn.Parameter | torch.Tensor | None, array: np.ndarray) -> None:
    if param is None:
        raise ValueError("layer has no such parameter")
    param.data = _tensor(array.reshape(tuple(param.shape)))


def _const(node: onnx.NodeProto, index: int, consts: Mapping[str, np.ndarray]) -> np.ndarray | None:
    name = node.input[index] if index < len(node.input) else ""
    return consts.get(name) if name else None


def _conv_weights(
    node: onnx.NodeProto, consts: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A (transposed) convolution's constant 3-5 d weight and bias, or None when they are not constant."""
    weight, bias = _const(node, 1, consts), _const(node, 2, consts)
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if weight is None or weight.ndim not in (3, 4, 5) or (has_bias and bias is None):
        return None
    return weight, bias


def _loaded(layer: Layer, weight: np.ndarray, bias: np.ndarray | None) -> Layer:
    """The layer in the weight's dtype, holding the weight and bias."""
    layer.to(_tensor(weight).dtype)
    _set(layer.weight, weight)
    if bias is not None:
        _set(layer.bias, bias)
    return layer


def conv(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray]
) -> nn.Module | None:
    """Conv with a constant 3-5 d weight as nn.Conv1d/2d/3d."""
    if (found := _conv_weights(node, consts)) is None:
        return None
    weight, bias = found
    n, groups = weight.ndim - 2, attrs.get("group", 1)
    pads = list(attrs.get("pads") or [0] * (2 * n))
    padding = symmetric(pads) if attrs.get("auto_pad", "NOTSET") == "NOTSET" else None
    layer = CONV_LAYERS[n](
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(attrs.get("strides") or [1] * n),
        padding=padding or 0,
        dilation=tuple(attrs.get("dilations") or [1] * n),
        groups=groups,
        bias=bias is not None,
    )
    return _loaded(layer, weight, bias)


def conv_transpose(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray]
) -> nn.Module | None:
    """ConvTranspose with a constant 3-5 d weight (in, out / groups, kernel...) as nn.ConvTranspose*d."""
    if (found := _conv_weights(node, consts)) is None:
        return None
    weight, bias = found
    n, groups = weight.ndim - 2, attrs.get("group", 1)
    channels, kernel = (weight.shape[0], weight.shape[1] * groups), tuple(weight.shape[2:])
    layer = CONV_TRANSPOSE_LAYERS[n](*channels, kernel, bias=bias is not None, **settings(attrs, n))
    return _loaded(layer, weight, bias)


def _bias_vector(bias: np.ndarray | None, features: int, scale: float) -> np.ndarray | None:
    """A bias that broadcasts along the last dim only, as a vector; None when it does not."""
    if bias is None or bias.size not in (1, features) or any(d != 1 for d in bias.shape[:-1]):
        return None
    return scale * np.broadcast_to(bias.reshape(-1), (features,))


def linear(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    """nn.Linear from an (out, in) weight and an optional (out,) bias."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    return _loaded(layer, weight, bias)


def gemm(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray]
) -> nn.Module | None:
    """Gemm with a constant B (and C that broadcasts per output) as nn.Linear."""
    b, c = _const(node, 1, consts), _const(node, 2, consts)
    has_c = len(node.input) > 2 and bool(node.input[2])
    if b is None or b.ndim != 2 or attrs.get("transA", 0) or (has_c and c is None):
        return None
    weight = attrs.get("alpha", 1.0) * (b if attrs.get("transB", 0) else b.T)
    bias = _bias_vector(c, weight.shape[0], attrs.get("beta", 1.0))
    if has_c and bias is None:
        return None
    return linear(weight.astype(b.dtype), None if bias is None else bias.astype(b.dtype))


def matmul(
    node: onnx.NodeProto, consts: Mapping[str, np.ndarray], bias: np.ndarray | None
) -> nn.Module | None:
    """MatMul by a constant 2-D right operand (plus a fused bias Add) as nn.Linear."""
    weight = _const(node, 1, consts)
    if weight is None or weight.ndim != 2 or _const(node, 0, consts) is not None:
        return None
    return linear(weight.T, None if bias is None else _bias_vector(bias, weight.shape[1], 1.0))


def fusable_bias(weight: np.ndarray | None, bias: np.ndarray | None) -> bool:
    """Whether an Add of `bias` after a MatMul by `weight` is a per-output-feature bias."""
    return weight is not None and weight.ndim == 2 and _bias_vector(bias, weight.shape[1], 1.0) is not None


def batch_norm(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray], rank: int | None
) -> nn.Module | None:
    """BatchNormalization with constant parameters and a known input rank as nn.BatchNorm*d."""
    params = [_const(node, i, consts) for i in range(1, 5)]
    if rank not in BATCH_NORMS or any(p is None for p in params):
        return None
    scale, shift, mean, var = (p for p in params if p is not None)
    layer = BATCH_NORMS[rank](
        scale.shape[0], eps=attrs.get("epsilon", 1e-5), momentum=1 - attrs.get("momentum", 0.9)
    )
    layer.to(_tensor(scale).dtype)
    for target, value in ((layer.weight, scale), (layer.bias, shift)):
        _set(target, value)
    _set(layer.running_mean, mean)
    _set(layer.running_var, var)
    return layer


def layer_norm(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray], rank: int | None
) -> nn.Module | None:
    """LayerNormalization over the last dim with a constant 1-D scale as nn.LayerNorm."""
    scale, shift = _const(node, 1, consts), _const(node, 2, consts)
    has_shift = len(node.input) > 2 and bool(node.input[2])
    axis = attrs.get("axis", -1)
    last = axis == -1 or (rank is not None and axis == rank - 1)
    if (
        scale is None
        or scale.ndim != 1
        or not last
        or (has_shift and (shift is None or shift.shape != scale.shape))
    ):
        return None
    layer = nn.LayerNorm(scale.shape[0], eps=attrs.get("epsilon", 1e-5), bias=has_shift)
    layer.to(_tensor(scale).dtype)
    _set(layer.weight, scale)
    if shift is not None:
        _set(layer.bias, shift)
    return layer


def embedding(
    node: onnx.NodeProto, attrs: Mapping[str, Any], consts: Mapping[str, np.ndarray]
) -> nn.Module | None:
    """Gather rows of a constant float table by activation indices as nn.Embedding."""
    table = _const(node, 0, consts)
    if table is None or table.ndim != 2 or attrs.get("axis", 0) != 0 or _const(node, 1, consts) is not None:
        return None
    if not np.issubdtype(table.dtype, np.floating):
        return None
    return nn.Embedding.from_pretrained(_tensor(table), freeze=False)
