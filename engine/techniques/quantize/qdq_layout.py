"""Where a static QDQ model quantizes: its activation Q/DQ pairs and its quantized constant inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass(frozen=True)
class ActivationQuant:
    """An activation's Q/DQ pair: the float tensor it rounds and its scale / zero point initializers."""

    tensor: str
    scale_name: str
    scale: np.ndarray
    zero_point: np.ndarray


@dataclass(frozen=True)
class ConstantQuant:
    """A constant input stored quantized (weight or bias) behind a DequantizeLinear: whose input and how."""

    node: str
    index: int
    quantized_name: str
    scale_name: str
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None


@dataclass
class QdqLayout:
    """Every quantized activation and constant of a QDQ model."""

    activations: list[ActivationQuant]
    constants: dict[tuple[str, int], ConstantQuant]
    # Each dequantized activation's name in the QDQ graph -> its scale initializer.
    activation_scales: dict[str, str]


def _zero_point(node: onnx.NodeProto, arrays: dict[str, np.ndarray], scale: np.ndarray) -> np.ndarray:
    if len(node.input) > 2 and node.input[2] in arrays:
        return arrays[node.input[2]]
    return np.zeros(scale.shape, dtype=np.uint8)


def read_layout(model: onnx.ModelProto, float_tensors: set[str]) -> QdqLayout:
    """The QDQ model's quantization points; activations named as in the float graph it was made from."""
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    dequantizers = {node.input[0]: node for node in model.graph.node if node.op_type == "DequantizeLinear"}
    activations: list[ActivationQuant] = []
    activation_scales: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[1] not in arrays:
            continue
        pair = dequantizers.get(node.output[0])
        # A graph output keeps its name on the DQ side; the quantizer renames what feeds the Q.
        names = [node.input[0]] + ([pair.output[0]] if pair is not None else [])
        tensor = next((name for name in names if name in float_tensors), None)
        scale = arrays[node.input[1]]
        if pair is not None:
            activation_scales[pair.output[0]] = node.input[1]
        if tensor is not None:
            activations.append(
                ActivationQuant(tensor, node.input[1], scale, _zero_point(node, arrays, scale))
            )
    constants: dict[tuple[str, int], ConstantQuant] = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in arrays:
            continue
        scale = arrays[node.input[1]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) if scale.size > 1 else None
        for consumer in model.graph.node:
            for index, name in enumerate(consumer.input):
                if name == node.output[0]:
                    constants[(consumer.name, index)] = ConstantQuant(
                        consumer.name,
                        index,
                        node.input[0],
                        node.input[1],
                        scale,
                        _zero_point(node, arrays, scale),
                        axis,
                    )
    return QdqLayout(activations, constants, activation_scales)
