"""A bridged float module made quantization-aware: fake-quant where the static QDQ model quantizes.

Activations get a fake-quant step after the step that computes them (one module per scale
initializer, so tensors the quantizer gave one scale keep one); Conv / Gemm / MatMul weights get a
fake-quant parametrization with the static model's (per-channel where it has them) scales. Layers
whose trained values could not be written back into the QDQ model are frozen.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor, nn
from torch.nn.utils import parametrize

from engine.bridge import OnnxModule, Step
from engine.bridge.module import layer_key
from engine.techniques.quantize.fake_quant import FAKE_QUANT_OP, FakeQuant
from engine.techniques.quantize.qdq_layout import ConstantQuant, QdqLayout


@dataclass
class WeightSlot:
    """A trainable layer and where its values go in the QDQ model."""

    step: Step
    layer: nn.Linear | nn.modules.conv._ConvNd
    # The torch weight is the ONNX initializer transposed (Gemm without transB, MatMul).
    transposed: bool
    weight: ConstantQuant | None
    bias: ConstantQuant | None
    quantizer: FakeQuant | None
    # Float initializers of the graph node (weight, bias) when they are stored unquantized.
    weight_name: str
    bias_name: str | None


@dataclass
class QatPlan:
    """What was made quantization-aware, and what was frozen."""

    activations: dict[str, FakeQuant] = field(default_factory=dict)
    by_tensor: dict[str, FakeQuant] = field(default_factory=dict)
    weights: list[WeightSlot] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)


def _activation_steps(module: OnnxModule, layout: QdqLayout, learn: bool, plan: QatPlan) -> None:
    """A fake-quant step after each quantized activation (graph inputs first)."""
    taken = set(module.layers.keys())
    keys: dict[str, str] = {}
    for point in layout.activations:
        if point.scale_name not in keys:
            quantizer = FakeQuant(point.scale, point.zero_point, point.zero_point.dtype, None, learn)
            keys[point.scale_name] = layer_key(f"fq_{point.scale_name}", taken)
            module.layers[keys[point.scale_name]] = quantizer
            plan.activations[point.scale_name] = quantizer
        plan.by_tensor[point.tensor] = plan.activations[point.scale_name]
    key_of = {point.tensor: keys[point.scale_name] for point in layout.activations}

    def fake_quant(tensor: str) -> Step:
        return Step(f"fake_quant:{tensor}", FAKE_QUANT_OP, [tensor], [tensor], {}, [None], key_of[tensor])

    steps = [fake_quant(spec.name) for spec in module.inputs if spec.name in key_of]
    for step in module.steps:
        steps.append(step)
        steps.extend(fake_quant(name) for name in step.outputs if name in key_of)
    module.steps = steps


def _transposed(step: Step) -> bool | None:
    """Whether the layer's torch weight is the ONNX weight transposed; None when it cannot be written back."""
    if step.op == "Conv":
        return False
    if step.op == "Gemm" and step.attrs.get("alpha", 1.0) == 1.0 and step.attrs.get("beta", 1.0) == 1.0:
        return not step.attrs.get("transB", 0)
    return True if step.op == "MatMul" else None


def _always_eval(layer: nn.Module, mode: bool = True) -> nn.Module:  # noqa: ARG001 (train's signature)
    """`train` for a frozen layer: it stays in eval mode (a batch norm normalizes as the int8 model will)."""
    return nn.Module.train(layer, False)


def _freeze(name: str, layer: nn.Module, plan: QatPlan) -> None:
    """Keep a layer's values as they are: nothing trains them, batch norms keep their statistics."""
    for parameter in layer.parameters():
        parameter.requires_grad_(False)
    # The fine-tuning loop switches the whole module to training mode each epoch.
    layer.train = types.MethodType(_always_eval, layer)  # type: ignore[method-assign]
    layer.eval()
    if any(True for _ in layer.parameters()):
        plan.frozen.append(name)


def make_quantization_aware(
    module: OnnxModule, node_inputs: dict[str, list[str]], layout: QdqLayout, learn: bool
) -> QatPlan:
    """Insert fake-quant into `module` in place, following the static QDQ model's layout."""
    plan = QatPlan()
    _activation_steps(module, layout, learn, plan)
    for step in module.steps:
        layer = module.layer_of(step)
        if layer is None or step.op == FAKE_QUANT_OP:
            continue
        transposed = _transposed(step)
        inputs = node_inputs.get(step.name, [])
        if (
            transposed is None
            or not isinstance(layer, nn.Linear | nn.modules.conv._ConvNd)
            or len(inputs) < 2
        ):
            _freeze(step.name, layer, plan)
            continue
        bias_name = inputs[2] if len(inputs) > 2 and inputs[2] else None
        if step.op == "MatMul" and layer.bias is not None:
            layer.bias.requires_grad_(False)  # the fused Add's bias stays in its own node
            bias_name = None
        weight, bias = layout.constants.get((step.name, 1)), layout.constants.get((step.name, 2))
        quantizer = None
        if weight is not None:
            axis = weight.axis if weight.axis is None or not transposed else 1 - weight.axis
            quantizer = FakeQuant(weight.scale, weight.zero_point, weight.zero_point.dtype, axis, learn)
            parametrize.register_parametrization(layer, "weight", quantizer)
        plan.weights.append(
            WeightSlot(step, layer, transposed, weight, bias, quantizer, inputs[1], bias_name)
        )
    return plan


def float_weight(slot: WeightSlot) -> np.ndarray:
    """The slot's trained float weight in the ONNX node's layout."""
    layer = slot.layer
    if parametrize.is_parametrized(layer, "weight"):
        original: Tensor = getattr(layer.parametrizations, "weight").original  # noqa: B009 (mypy cannot see it)
        value = original.detach().numpy()
    else:
        value = layer.weight.detach().numpy()
    return value.T if slot.transposed else value
