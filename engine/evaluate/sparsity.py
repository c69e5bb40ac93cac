"""Per-layer sparsity of a model's weights: the fraction of each weight tensor that is zero."""

from __future__ import annotations

import onnx

from engine.evaluate.parameters import iter_graphs, parameter_tensors

# Below this fraction of zeros a layer's zeros are incidental (int8 rounding of tiny weights), not
# pruning, and a model without any layer above it is reported as dense.
SPARSE_LAYER_FRACTION = 0.1
# A transformer can have hundreds of weight tensors; the largest ones say where the bytes went.
MAX_LAYERS = 50
# Ops that only carry a weight to the layer that uses it (quantized storage, layout changes).
_PASS_THROUGH = {"DequantizeLinear", "Transpose", "Cast", "Reshape"}


def per_layer_sparsity(model: onnx.ModelProto, limit: int = MAX_LAYERS) -> dict[str, float] | None:
    """{layer name: fraction of zeros} for the `limit` largest weight tensors, or None when dense.

    Weights are parameter tensors of rank two or more (biases and norm scales are left out); for a
    quantized weight, zero means equal to its zero point. A weight is named after the node that
    uses it, so a layer keeps its name through quantization; entries are in graph order.
    """
    weights = [tensor for tensor in parameter_tensors(model) if len(tensor.shape) >= 2 and tensor.size]
    largest = {tensor.name for tensor in sorted(weights, key=lambda t: t.size, reverse=True)[:limit]}
    names = _layer_names(model)
    fractions: dict[str, float] = {}
    for tensor in weights:
        if tensor.name in largest:
            name = names.get(tensor.name, tensor.name)
            fractions[tensor.name if name in fractions else name] = round(
                1.0 - tensor.nonzero / tensor.size, 6
            )
    if not any(value >= SPARSE_LAYER_FRACTION for value in fractions.values()):
        return None
    return fractions


def _layer_names(model: onnx.ModelProto) -> dict[str, str]:
    """Initializer name -> name of the first named node that computes with it."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    initializers: list[str] = []
    for graph in iter_graphs(model.graph):
        initializers += [tensor.name for tensor in graph.initializer]
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
    names: dict[str, str] = {}
    for initializer in initializers:
        tensor, seen = initializer, 0
        while seen < 4 and consumers.get(tensor):
            node, seen = consumers[tensor][0], seen + 1
            if node.op_type not in _PASS_THROUGH or not node.output:
                if node.name:
                    names[initializer] = node.name
                break
            tensor = node.output[0]
    return names
