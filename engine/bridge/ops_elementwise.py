"""Element-wise ONNX ops as torch functions."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.bridge.registry import Call, op

UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Exp": torch.exp,
    "Log": torch.log,
    "Sqrt": torch.sqrt,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Erf": torch.erf,
    "Reciprocal": torch.reciprocal,
    "Floor": torch.floor,
    "Ceil": torch.ceil,
    "Round": torch.round,
    "Sin": torch.sin,
    "Cos": torch.cos,
    "Tan": torch.tan,
    "Atan": torch.atan,
    "Asin": torch.asin,
    "Acos": torch.acos,
    "Sinh": torch.sinh,
    "Cosh": torch.cosh,
    "Sign": torch.sign,
    "Not": torch.logical_not,
    "Softplus": F.softplus,
    "Softsign": F.softsign,
    "HardSwish": F.hardswish,
    "Mish": F.mish,
    "IsNaN": torch.isnan,
    "IsInf": torch.isinf,
}

BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Equal": torch.eq,
    "Less": torch.lt,
    "LessOrEqual": torch.le,
    "Greater": torch.gt,
    "GreaterOrEqual": torch.ge,
    "And": torch.logical_and,
    "Or": torch.logical_or,
    "Xor": torch.logical_xor,
}

VARIADIC: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Sum": torch.add,
    "Max": torch.maximum,
    "Min": torch.minimum,
}


@op(*UNARY)
def unary(call: Call) -> Tensor:
    """One-input functions with no attributes."""
    return UNARY[call.attrs["_op"]](call.x())


@op(*BINARY)
def binary(call: Call) -> Tensor:
    """Two-input broadcasting functions."""
    return BINARY[call.attrs["_op"]](call.x(0), call.x(1))


@op(*VARIADIC)
def variadic(call: Call) -> Tensor:
    """Sum, Max and Min over any number of inputs."""
    present = [t for t in call.inputs if t is not None]
    return functools.reduce(VARIADIC[call.attrs["_op"]], present)


@op("Mean")
def mean(call: Call) -> Tensor:
    """Element-wise mean of the inputs."""
    present = [t for t in call.inputs if t is not None]
    return functools.reduce(torch.add, present) / len(present)


@op("Identity", "Dropout")
def identity(call: Call) -> Tensor:
    """Inference-time identity (Dropout is inactive in an inference graph)."""
    return call.x()


@op("Div")
def div(call: Call) -> Tensor:
    """Division; integer division truncates toward zero as in ONNX."""
    a, b = call.x(0), call.x(1)
    if a.dtype.is_floating_point:
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


@op("Pow")
def power(call: Call) -> Tensor:
    """Power, keeping the base's dtype as ONNX does."""
    base = call.x(0)
    return torch.pow(base, call.x(1)).to(base.dtype)


@op("Mod")
def mod(call: Call) -> Tensor:
    """Remainder with the divisor's sign, or C fmod when fmod=1."""
    if call.attr("fmod", 0):
        return torch.fmod(call.x(0), call.x(1))
    return torch.remainder(call.x(0), call.x(1))


@op("Where")
def where(call: Call) -> Tensor:
    """Select by a boolean condition."""
    return torch.where(call.x(0), call.x(1), call.x(2))


@op("Clip")
def clip(call: Call) -> Tensor:
    """Clamp to [min, max] given as attributes (opset < 11) or inputs."""
    x = call.x()
    if call.has(1) or call.has(2):
        low, high = call.const(1), call.const(2)
        if (low is not None or not call.has(1)) and (high is not None or not call.has(2)):
            return torch.clamp(x, None if low is None else low.item(), None if high is None else high.item())
        low_t, high_t = (call.x(i) if call.has(i) else None for i in (1, 2))
        return torch.clamp(x, low_t, high_t)
    return torch.clamp(x, call.attr("min"), call.attr("max"))


@op("LeakyRelu")
def leaky_relu(call: Call) -> Tensor:
    """Leaky ReLU with ONNX's default slope."""
    return F.leaky_relu(call.x(), call.attr("alpha", 0.01))


@op("Elu")
def elu(call: Call) -> Tensor:
    """ELU."""
    return F.elu(call.x(), call.attr("alpha", 1.0))


@op("Celu")
def celu(call: Call) -> Tensor:
    """CELU."""
    return F.celu(call.x(), call.attr("alpha", 1.0))


@op("Selu")
def selu(call: Call) -> Tensor:
    """SELU with explicit constants."""
    x = call.x()
    alpha, gamma = (
        call.attr("alpha", 1.67326319217681884765625),
        call.attr("gamma", 1.05070102214813232421875),
    )
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@op("HardSigmoid")
def hard_sigmoid(call: Call) -> Tensor:
    """max(0, min(1, alpha * x + beta))."""
    x = call.x()
    return torch.clamp(call.attr("alpha", 0.2) * x + call.attr("beta", 0.5), 0.0, 1.0)


@op("ThresholdedRelu")
def thresholded_relu(call: Call) -> Tensor:
    """x where x > alpha, else 0."""
    x = call.x()
    return torch.where(x > call.attr("alpha", 1.0), x, torch.zeros_like(x))


@op("PRelu")
def prelu(call: Call) -> Tensor:
    """Parametric ReLU with a broadcasting slope tensor; one slope per channel (dim 1) exports as PRelu."""
    x, slope = call.x(), call.x(1)
    padded = [1] * (x.dim() - slope.dim()) + list(slope.shape)
    if x.dim() >= 2 and slope.numel() == padded[1] == x.shape[1] and slope.numel() == math.prod(padded):
        return F.prelu(x, slope.reshape(-1))  # onnxruntime runs (and fuses) a PRelu, not a Where
    return torch.where(x < 0, x * slope, x)


@op("Gelu")
def gelu(call: Call) -> Tensor:
    """GELU, exact or with the tanh approximation."""
    return F.gelu(call.x(), approximate=call.attr("approximate", "none"))
