"""Fake quantization for training: round to the int8 grid in the forward pass, straight-through gradients.

Scales are frozen buffers (Model Optimizer's QAT) or parameters trained with the weights (LSQ, as
NNCF does); zero points stay where calibration put them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from engine.bridge.registry import Call, op

# The op name of the steps that fake-quantize an activation in a bridged module.
FAKE_QUANT_OP = "ModelPressFakeQuant"
# Scales stay positive while they are learned.
MIN_SCALE = 1e-8


def int_range(dtype: np.dtype) -> tuple[int, int]:
    """The integer range of a quantized type (int8 or uint8)."""
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


class FakeQuant(nn.Module):
    """Quantize-dequantize with one scale (per tensor) or one per slice along `axis` (per channel)."""

    scale: Tensor
    zero_point: Tensor

    def __init__(
        self, scale: np.ndarray, zero_point: np.ndarray, dtype: np.dtype, axis: int | None, learn: bool
    ):
        super().__init__()
        self.qmin, self.qmax = int_range(dtype)
        self.axis = axis
        self.learn = learn
        scale_tensor = torch.tensor(np.asarray(scale, dtype=np.float32).reshape(-1))
        if learn:
            self.scale = nn.Parameter(scale_tensor)
        else:
            self.register_buffer("scale", scale_tensor)
        self.register_buffer("zero_point", torch.tensor(np.asarray(zero_point).reshape(-1).astype(np.int32)))

    def current_scale(self) -> np.ndarray:
        """The scale in force (learned or frozen), as float32."""
        return self.scale.detach().clamp_min(MIN_SCALE).numpy().astype(np.float32)

    def forward(self, x: Tensor) -> Tensor:
        """x rounded to the quantization grid; gradients pass straight through inside the range."""
        scale = self.scale.clamp_min(MIN_SCALE) if self.learn else self.scale
        if self.learn:
            # LSQ's gradient scale: keeps the scale's step size in proportion to the weights' (Esser et al.).
            factor = 1.0 / math.sqrt(max(x.numel() // max(scale.numel(), 1), 1) * self.qmax)
            zero = self.zero_point.float()
            if self.axis is None:
                return torch._fake_quantize_learnable_per_tensor_affine(
                    x, scale, zero, self.qmin, self.qmax, factor
                )
            return torch._fake_quantize_learnable_per_channel_affine(
                x, scale, zero, self.axis, self.qmin, self.qmax, factor
            )
        if self.axis is None:
            return torch.fake_quantize_per_tensor_affine(x, scale, self.zero_point, self.qmin, self.qmax)
        return torch.fake_quantize_per_channel_affine(
            x, scale, self.zero_point, self.axis, self.qmin, self.qmax
        )


@op(FAKE_QUANT_OP)
def _fake_quant(call: Call) -> Tensor:
    """An activation's fake-quant step: the step's layer is the FakeQuant module."""
    if call.layer is None:
        raise ValueError("a fake-quant step needs its FakeQuant module")
    result: Tensor = call.layer(call.x(0))
    return result
