"""Which tensor of a quantized graph mirrors each activation of its float original, and which node owns it.

Quantizers keep the float graph's tensor names and add suffixes (the convention
onnxruntime.quantization.qdq_loss_debug relies on): a QDQ model holds `t` before and
`t_DequantizeLinear_Output` after the rounding; dynamic and QOperator models hold `t_quantized` with
`t_scale` and `t_zero_point`; float16 models keep `t` itself. A QOperator quantizer that folds an
activation into the node before it (Conv + Relu into one QLinearConv) keeps the node's output name for
the activation's values, so the float activation's output is matched there instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

DEQUANTIZED_SUFFIX = "_DequantizeLinear_Output"
QUANTIZED_SUFFIX = "_quantized"
# Ops a quantizer inserts between a node and the tensor its float original produced.
_INSERTED = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast"}
# Activations a quantizer may fold into the node that feeds them.
_FOLDABLE = {"Relu", "Clip"}
# onnxruntime names the integer node that replaces node `n` `n_quant`.
_QUANT_NODE_SUFFIX = "_quant"


@dataclass(frozen=True)
class Source:
    """How to read a float activation from the candidate: a tensor, or integers with scale and zero point."""

    tensor: str
    scale: str | None = None
    zero_point: str | None = None


def activations(model: onnx.ModelProto) -> list[str]:
    """Graph inputs and node outputs of the main graph, in order (weights and constants excluded)."""
    weights = {tensor.name for tensor in model.graph.initializer}
    names = [value.name for value in model.graph.input if value.name not in weights]
    for node in model.graph.node:
        if node.op_type != "Constant":
            names.extend(name for name in node.output if name)
    return list(dict.fromkeys(names))


def match_tensors(baseline: onnx.ModelProto, candidate: onnx.ModelProto) -> dict[str, Source]:
    """Each float activation the candidate also computes, mapped to where the candidate holds it."""
    produced = {name for node in candidate.graph.node for name in node.output}
    available = produced | {value.name for value in candidate.graph.input}
    known = available | {tensor.name for tensor in candidate.graph.initializer}
    matches: dict[str, Source] = {}
    for name in activations(baseline):
        if name + DEQUANTIZED_SUFFIX in available:
            matches[name] = Source(name + DEQUANTIZED_SUFFIX)
        elif name + QUANTIZED_SUFFIX in available and {name + "_scale", name + "_zero_point"} <= known:
            matches[name] = Source(name + QUANTIZED_SUFFIX, name + "_scale", name + "_zero_point")
        elif name in available:
            matches[name] = Source(name)
    _move_folded_activations(baseline, candidate, matches)
    return matches


def _move_folded_activations(
    baseline: onnx.ModelProto, candidate: onnx.ModelProto, matches: dict[str, Source]
) -> None:
    """Match a folded activation's output where its values went: the output of the node it was folded into."""
    kept = {node.name for node in candidate.graph.node}
    readers: dict[str, int] = {}
    for node in baseline.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for node in baseline.graph.node:
        if node.op_type not in _FOLDABLE or not node.input or node.name in kept:
            continue
        fed, produced = node.input[0], node.output[0]
        if fed in matches and produced not in matches and readers.get(fed) == 1:
            matches[produced] = matches.pop(fed)


def owners(
    baseline: onnx.ModelProto, candidate: onnx.ModelProto, sources: dict[str, Source]
) -> dict[str, str]:
    """The float node each matched tensor belongs to: the candidate's producer when the float graph has it.

    A quantizer may fuse nodes (a QDQ Conv takes over its Relu's output), so the candidate's producer,
    found by walking back over the Quantize/Dequantize/Cast it inserted (and known by its float name
    when onnxruntime renamed it `<name>_quant`), names the node a user would exclude; otherwise the
    float graph's own producer does. Graph inputs have no owner.
    """
    float_nodes = {node.name for node in baseline.graph.node if node.name}
    float_producer = {name: node.name for node in baseline.graph.node for name in node.output}
    producer = {name: node for node in candidate.graph.node for name in node.output}
    found: dict[str, str] = {}
    for name, source in sources.items():
        node = producer.get(source.tensor)
        for _ in range(4):
            if node is None or node.op_type not in _INSERTED or not node.input:
                break
            node = producer.get(node.input[0])
        own = node.name.removesuffix(_QUANT_NODE_SUFFIX) if node is not None else ""
        if own in float_nodes:
            found[name] = own
        elif float_producer.get(name):
            found[name] = float_producer[name]
    return found


def candidate_reads(sources: dict[str, Source], candidate: onnx.ModelProto) -> list[str]:
    """Candidate tensors to expose as outputs (initializers are read from the graph instead)."""
    weights = {tensor.name for tensor in candidate.graph.initializer}
    wanted = [
        name
        for source in sources.values()
        for name in (source.tensor, source.scale, source.zero_point)
        if name and name not in weights
    ]
    return list(dict.fromkeys(wanted))
