"""ConvTranspose (the upsampling convolution of decoders) as an nn layer or a torch function."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from engine.bridge.ops_nn import symmetric
from engine.bridge.registry import Call, op, validator

CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def settings(attrs: Mapping[str, Any], n: int) -> dict[str, Any]:
    """The node's geometry as torch's keyword arguments (pads are symmetric: see the validator)."""
    return {
        "stride": tuple(attrs.get("strides") or [1] * n),
        "padding": symmetric(list(attrs.get("pads") or [0] * (2 * n))) or 0,
        "output_padding": tuple(attrs.get("output_padding") or [0] * n),
        "groups": attrs.get("group", 1),
        "dilation": tuple(attrs.get("dilations") or [1] * n),
    }


@op("ConvTranspose")
def conv_transpose(call: Call) -> Tensor:
    """N-d transposed convolution; a constant weight is an nn.ConvTranspose layer."""
    x = call.x()
    if isinstance(call.layer, nn.modules.conv._ConvTransposeNd):
        return call.layer(x)
    bias = call.x(2) if call.has(2) else None
    return CONV_TRANSPOSE[x.dim() - 2](x, call.x(1), bias, **settings(call.attrs, x.dim() - 2))


@validator("ConvTranspose")
def check_conv_transpose(attrs: Mapping[str, Any]) -> str | None:
    """Output sizes worked out by ONNX's own rules have no torch equivalent."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return "ConvTranspose with auto_pad SAME"
    if attrs.get("output_shape"):
        return "ConvTranspose with output_shape"
    pads = attrs.get("pads")
    if pads and symmetric(pads) is None:
        return "ConvTranspose with asymmetric pads"
    return None
