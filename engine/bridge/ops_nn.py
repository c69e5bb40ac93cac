"""Convolution, pooling, normalization and padding ONNX ops as torch modules and functions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.bridge.registry import Call, op, validator

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def onnx_pads(attrs: Mapping[str, Any], spatial: Sequence[int], kernel: Sequence[int]) -> list[int]:
    """Explicit [begin..., end...] pads, resolving auto_pad against the input's spatial size."""
    n = len(kernel)
    strides = attrs.get("strides") or [1] * n
    dilations = attrs.get("dilations") or [1] * n
    mode = attrs.get("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            size = int(size)  # SAME pads depend on the size: torch.export specializes it here
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            begins.append(small if mode == "SAME_UPPER" else total - small)
            ends.append(total - begins[-1])
        return begins + ends
    if mode == "VALID":
        return [0] * (2 * n)
    return list(attrs.get("pads") or [0] * (2 * n))


def symmetric(pads: Sequence[int]) -> tuple[int, ...] | None:
    """The per-dim padding when begins equal ends, else None."""
    n = len(pads) // 2
    return tuple(pads[:n]) if list(pads[:n]) == list(pads[n:]) else None


def torch_pads(pads: Sequence[int]) -> list[int]:
    """ONNX [b1, b2, e1, e2] as F.pad's last-dim-first [b2, e2, b1, e1]."""
    n = len(pads) // 2
    return [p for i in reversed(range(n)) for p in (pads[i], pads[n + i])]


def _spatial(x: Tensor) -> list[Any]:
    # Left as the tensor's sizes (symbolic under torch.export): only SAME auto_pad reads them.
    return list(x.shape[2:])


@op("Conv")
def conv(call: Call) -> Tensor:
    """N-d convolution; a constant weight is an nn.Conv layer (padding folded in when symmetric)."""
    x = call.x()
    if isinstance(call.layer, nn.modules.conv._ConvNd):
        pads = onnx_pads(call.attrs, _spatial(x), list(call.layer.kernel_size))
        if symmetric(pads) != tuple(call.layer.padding):
            x = F.pad(x, torch_pads(pads))  # the layer was built without padding for this case
        return call.layer(x)
    weight = call.x(1)
    pads = onnx_pads(call.attrs, _spatial(x), [int(k) for k in weight.shape[2:]])
    n = x.dim() - 2
    bias = call.x(2) if call.has(2) else None
    strides, dilations = call.attr("strides") or [1] * n, call.attr("dilations") or [1] * n
    return CONV[n](F.pad(x, torch_pads(pads)), weight, bias, strides, 0, dilations, call.attr("group", 1))


@op("MaxPool")
def max_pool(call: Call) -> Tensor:
    """Max pooling; padding the pooling op cannot express goes through an explicit -inf pad."""
    x = call.x()
    kernel = call.attr("kernel_shape")
    n, pads = len(kernel), onnx_pads(call.attrs, _spatial(x), kernel)
    strides, dilations = call.attr("strides") or [1] * n, call.attr("dilations") or [1] * n
    ceil = bool(call.attr("ceil_mode", 0))
    even = symmetric(pads)
    if even is not None and all(p <= k // 2 for p, k in zip(even, kernel, strict=True)):
        return MAX_POOL[n](x, kernel, strides, list(even), dilations, ceil_mode=ceil)
    x = F.pad(x, torch_pads(pads), value=float("-inf"))
    return MAX_POOL[n](x, kernel, strides, 0, dilations, ceil_mode=ceil)


@op("AveragePool")
def average_pool(call: Call) -> Tensor:
    """Average pooling, counting padded cells only when count_include_pad is set."""
    x = call.x()
    kernel = call.attr("kernel_shape")
    n, pads = len(kernel), onnx_pads(call.attrs, _spatial(x), kernel)
    strides, ceil = call.attr("strides") or [1] * n, bool(call.attr("ceil_mode", 0))
    include = bool(call.attr("count_include_pad", 0))
    even = symmetric(pads)
    if even is not None and all(p <= k // 2 for p, k in zip(even, kernel, strict=True)):
        return AVG_POOL[n](x, kernel, strides, list(even), ceil, include)
    total = AVG_POOL[n](F.pad(x, torch_pads(pads)), kernel, strides, 0, ceil, True)
    if include:
        return total
    cells = AVG_POOL[n](F.pad(torch.ones_like(x), torch_pads(pads)), kernel, strides, 0, ceil, True)
    return total / cells


@validator("AveragePool", "MaxPool")
def check_pool(attrs: Mapping[str, Any]) -> str | None:
    """Dilated average pooling and column-major indices have no torch equivalent."""
    if attrs.get("_op") == "AveragePool" and any(d != 1 for d in attrs.get("dilations") or []):
        return "dilated AveragePool"
    if attrs.get("storage_order", 0):
        return "MaxPool with storage_order=1"
    return None


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(call: Call) -> Tensor:
    """Mean or max over all spatial dims, kept as size 1."""
    x = call.x()
    dims = list(range(2, x.dim()))
    if call.attrs["_op"] == "GlobalMaxPool":
        return torch.amax(x, dims, keepdim=True)
    return torch.mean(x, dims, keepdim=True)


@op("BatchNormalization")
def batch_norm(call: Call) -> Tensor:
    """Batch norm; constant statistics make it an nn.BatchNorm layer."""
    if call.layer is not None:
        return call.layer(call.x())
    eps = call.attr("epsilon", 1e-5)
    return F.batch_norm(call.x(), call.x(3), call.x(4), call.x(1), call.x(2), False, 0.0, eps)


@validator("BatchNormalization")
def check_batch_norm(attrs: Mapping[str, Any]) -> str | None:
    """A training-mode node also outputs running statistics, which the bridge does not."""
    return "BatchNormalization with training_mode=1" if attrs.get("training_mode", 0) else None


@op("LayerNormalization")
def layer_norm(call: Call) -> Tensor:
    """Normalize over the dims from `axis` on, then scale and shift (broadcasting)."""
    if call.layer is not None:
        return call.layer(call.x())
    x = call.x()
    axis = call.attr("axis", -1)
    shape = [int(d) for d in x.shape[axis:]]
    y = F.layer_norm(x, shape, None, None, call.attr("epsilon", 1e-5)) * call.x(1)
    return y + call.x(2) if call.has(2) else y


@op("InstanceNormalization")
def instance_norm(call: Call) -> Tensor:
    """Per-sample, per-channel normalization."""
    return F.instance_norm(call.x(), weight=call.x(1), bias=call.x(2), eps=call.attr("epsilon", 1e-5))


@op("LRN")
def lrn(call: Call) -> Tensor:
    """Local response normalization across channels."""
    attrs = call.attrs
    return F.local_response_norm(
        call.x(), attrs["size"], attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
    )


@op("Pad")
def pad(call: Call) -> Tensor:
    """Constant, reflect or edge padding, pads and axes as inputs (or attributes before opset 11)."""
    x = call.x()
    pads = call.ints(1) if call.has(1) else list(call.attr("pads"))
    axes = [a + x.dim() if a < 0 else a for a in call.ints(3)] if call.has(3) else list(range(x.dim()))
    full = [0] * (2 * x.dim())
    for i, axis in enumerate(axes):
        full[axis], full[x.dim() + axis] = pads[i], pads[len(axes) + i]
    value = call.const(2) if call.has(2) else None
    fill = float(value.reshape(-1)[0]) if value is not None and value.size else float(call.attr("value", 0.0))
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[call.attr("mode", "constant")]
    first = next((i for i in range(x.dim()) if full[i] or full[x.dim() + i]), x.dim())
    trimmed = full[first : x.dim()] + full[x.dim() + first :]
    return F.pad(x, torch_pads(trimmed), mode=mode, value=fill if mode == "constant" else None)


@validator("Pad")
def check_pad(attrs: Mapping[str, Any]) -> str | None:
    """Wrap padding has no torch equivalent."""
    mode = attrs.get("mode", "constant")
    return None if mode in ("constant", "reflect", "edge") else f"Pad mode {mode}"
