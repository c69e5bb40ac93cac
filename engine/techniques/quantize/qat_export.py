"""The trained values written back into the static QDQ model: same nodes, same Q/DQ layout, new numbers."""

from __future__ import annotations

import numpy as np

from engine.techniques.quantize.fake_quant import int_range
from engine.techniques.quantize.qat_module import QatPlan, WeightSlot, float_weight
from engine.techniques.quantize.qdq_layout import ConstantQuant

INT32 = np.dtype(np.int32)


def _along(scale: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    """A scale (or zero point) shaped to broadcast along `axis` of an ndim array."""
    if axis is None:
        return scale.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return scale.reshape(shape)


def quantized(value: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int | None) -> np.ndarray:
    """Round to the integer grid of `zero_point`'s type, as QuantizeLinear does (half to even)."""
    low, high = int_range(zero_point.dtype)
    steps = np.rint(value / _along(scale, axis, value.ndim)) + _along(zero_point, axis, value.ndim)
    return np.clip(steps, low, high).astype(zero_point.dtype)


def _weight_arrays(slot: WeightSlot, plan: QatPlan, arrays: dict[str, np.ndarray]) -> None:
    """The slot's weight (quantized with the scales it trained under) and bias."""
    weight = float_weight(slot)
    weight_scale: np.ndarray | None = None
    if slot.weight is not None and slot.quantizer is not None:
        weight_scale = slot.quantizer.current_scale().reshape(slot.weight.scale.shape)
        arrays[slot.weight.quantized_name] = quantized(
            weight, weight_scale, slot.weight.zero_point, slot.weight.axis
        )
        arrays[slot.weight.scale_name] = weight_scale
    else:
        arrays[slot.weight_name] = weight
    if slot.layer.bias is None:
        return
    bias = slot.layer.bias.detach().numpy()
    if slot.bias is not None and slot.bias.zero_point.dtype == INT32:
        values, scale = _int32_bias(bias, slot, plan, weight_scale, slot.bias)
        arrays[slot.bias.quantized_name], arrays[slot.bias.scale_name] = values, scale
    elif slot.bias_name is not None:
        arrays[slot.bias_name] = bias


def _int32_bias(
    bias: np.ndarray, slot: WeightSlot, plan: QatPlan, weight_scale: np.ndarray | None, point: ConstantQuant
) -> tuple[np.ndarray, np.ndarray]:
    """The bias on the grid of input scale x weight scale, as the quantizer stores it."""
    scale = point.scale
    source = plan.by_tensor.get(slot.step.inputs[0])
    if source is not None and weight_scale is not None:
        scale = (
            (source.current_scale().reshape(()) * weight_scale).reshape(point.scale.shape).astype(np.float32)
        )
    return np.rint(bias / scale.reshape(bias.shape if scale.size > 1 else ())).astype(np.int32), scale


def trained_initializers(plan: QatPlan) -> dict[str, np.ndarray]:
    """Initializer name -> new value: weights, biases, and the activation scales (when learned)."""
    arrays: dict[str, np.ndarray] = {}
    for slot in plan.weights:
        _weight_arrays(slot, plan, arrays)
    for scale_name, quantizer in plan.activations.items():
        if quantizer.learn:
            arrays[scale_name] = quantizer.current_scale().reshape(())
    return arrays
