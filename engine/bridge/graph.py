"""ONNX graph to OnnxModule: sort nodes, fold constants, turn weighted nodes into nn layers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from engine.bridge import layers
from engine.bridge.module import OnnxModule, Step, TensorSpec, layer_key
from engine.bridge.ops_recurrent import recurrent_layer
from engine.bridge.registry import HANDLERS, Call
from engine.bridge.support import attributes, check_supported, node_name, opset_of

Indexed = tuple[int, onnx.NodeProto]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.tensor_type
    if not kind.HasField("shape"):
        return TensorSpec(value.name, kind.elem_type, None)
    # Converters write -1 (or 0) for a free dim; it is unknown, not a size.
    dims = tuple(d.dim_value if d.dim_value > 0 else (d.dim_param or None) for d in kind.shape.dim)
    return TensorSpec(value.name, kind.elem_type, dims)


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Rank of every value shape inference can tell (some layers depend on it)."""
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:
        graph = model.graph
    values = [*graph.input, *graph.value_info, *graph.output]
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


def _topological(graph: onnx.GraphProto) -> list[Indexed]:
    ready = {v.name for v in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(enumerate(graph.node)), []
    while pending:
        runnable = [(i, n) for i, n in pending if all(name in ready for name in n.input)]
        if not runnable:
            missing = sorted({x for _, n in pending for x in n.input if x not in ready})
            raise ValueError(f"graph has a cycle or undefined inputs: {missing[:5]}")
        ordered += runnable
        ready.update(name for _, n in runnable for name in n.output)
        done = {i for i, _ in runnable}
        pending = [(i, n) for i, n in pending if i not in done]
    return ordered


def _constant(attrs: dict[str, Any]) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "value_float" in attrs or "value_floats" in attrs:
        return np.asarray(attrs.get("value_float", attrs.get("value_floats")), dtype=np.float32)
    return np.asarray(attrs.get("value_int", attrs.get("value_ints")), dtype=np.int64)


def _bias_adds(
    nodes: list[Indexed], consts: dict[str, np.ndarray], outputs: set[str]
) -> dict[int, onnx.NodeProto]:
    """MatMul (by index) -> the Add of a per-feature constant bias that directly follows it."""
    readers = Counter(name for _, n in nodes for name in n.input if name)
    producers = {n.output[0]: (i, n) for i, n in nodes if n.op_type == "MatMul"}
    fused: dict[int, onnx.NodeProto] = {}
    for _, add in nodes:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        for ours, other in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
            if ours not in producers or readers[ours] != 1 or ours in outputs or other not in consts:
                continue
            index, matmul = producers[ours]
            weight = consts.get(matmul.input[1])
            if matmul.input[0] not in consts and layers.fusable_bias(weight, consts[other]):
                fused[index] = add
    return fused


def _layer(
    node: onnx.NodeProto,
    attrs: dict[str, Any],
    consts: dict[str, np.ndarray],
    ranks: dict[str, int],
    bias: np.ndarray | None,
) -> nn.Module | None:
    kind = node.op_type
    if kind == "Conv":
        return layers.conv(node, attrs, consts)
    if kind == "ConvTranspose":
        return layers.conv_transpose(node, attrs, consts)
    if kind == "Gemm":
        return layers.gemm(node, attrs, consts)
    if kind == "MatMul":
        return layers.matmul(node, consts, bias)
    if kind == "BatchNormalization":
        return layers.batch_norm(node, attrs, consts, ranks.get(node.input[0]))
    if kind == "LayerNormalization":
        return layers.layer_norm(node, attrs, consts, ranks.get(node.input[0]))
    if kind == "Gather":
        return layers.embedding(node, attrs, consts)
    if kind in ("LSTM", "GRU"):
        return recurrent_layer(node, attrs, consts)
    return None


def _layer_reads(node: onnx.NodeProto, zeros: set[str]) -> list[str]:
    """The inputs a layer's step still reads, at their ONNX positions; weights live in the layer."""
    if node.op_type == "Gather":
        return ["", node.input[1]]
    if node.op_type in ("LSTM", "GRU"):
        # Sequence lengths and initial states stay inputs; W, R and B are the layer's. A state of
        # zeros sized from the batch (torch's exporter writes one) is the layer's default: reading
        # none leaves the shape arithmetic unused, so torch.export need not trace it.
        return [node.input[0], "", "", "", *(name if name not in zeros else "" for name in node.input[4:])]
    return [node.input[0]]


# Ops whose output is all zeros when their data input is (torch's exporter slices one zero state per layer).
ZERO_KEEPING = frozenset(
    {"Slice", "Expand", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather", "Cast", "Identity", "Split"}
)


def _zero_fills(nodes: list[Indexed], consts: dict[str, np.ndarray], opset: int) -> set[str]:
    """Values known to be all zeros: ConstantOfShape zero fills, and slices and reshapes of zeros."""
    filled = {name for name, value in consts.items() if value.size and not np.any(value)}
    for _, node in nodes:
        if node.op_type == "ConstantOfShape":
            value = attributes(node, opset).get("value")
            if value is None or not np.any(value):
                filled.add(node.output[0])
        elif node.op_type in ZERO_KEEPING and node.input and node.input[0] in filled:
            filled.update(name for name in node.output if name)
    return filled


def _live(steps: list[Step], outputs: set[str]) -> list[Step]:
    """The steps whose results reach a graph output, in order."""
    needed, kept = set(outputs), []
    for step in reversed(steps):
        if needed.intersection(step.outputs):
            kept.append(step)
            needed.update(name for name in step.inputs if name)
    return kept[::-1]


def _fold(node: onnx.NodeProto, attrs: dict[str, Any], consts: dict[str, np.ndarray], opset: int) -> None:
    """Evaluate a node whose inputs are all constant, once, at build time."""
    values = [consts[name] if name else None for name in node.input]
    tensors = [torch.from_numpy(np.array(v, copy=True)) if v is not None else None for v in values]
    result = HANDLERS[node.op_type](Call(tensors, values, attrs, None, len(node.output), opset))
    produced = (result,) if isinstance(result, torch.Tensor) else tuple(result)
    for name, value in zip(node.output, produced, strict=False):
        if name:
            consts[name] = value.detach().numpy()


def _fold_constants(nodes: list[Indexed], consts: dict[str, np.ndarray], opset: int) -> list[Indexed]:
    """Evaluate Constant nodes and nodes with only constant inputs; return the nodes left to run."""
    live = []
    for index, node in nodes:
        attrs = attributes(node, opset)
        if node.op_type == "Constant":
            consts[node.output[0]] = _constant(attrs)
        elif any(node.input) and all(n in consts for n in node.input if n):
            _fold(node, attrs, consts, opset)
        else:
            live.append((index, node))
    return live


def build_module(model: onnx.ModelProto) -> OnnxModule:
    """The model as an OnnxModule in eval mode; unsupported ops raise TechniqueError before any work."""
    check_supported(model)
    graph, opset = model.graph, opset_of(model)
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    ranks, graph_outputs = _ranks(model), {o.name for o in graph.output}
    nodes = _fold_constants(_topological(graph), consts, opset)
    fused = _bias_adds(nodes, consts, graph_outputs)
    skipped = {id(add) for add in fused.values()}
    zeros = _zero_fills(nodes, consts, opset)
    steps: list[Step] = []
    modules: dict[str, nn.Module] = {}
    taken: set[str] = set()
    for index, node in nodes:
        if id(node) in skipped:
            continue
        attrs = attributes(node, opset)
        bias_add = fused.get(index)
        bias = next((consts[n] for n in bias_add.input if n in consts), None) if bias_add else None
        layer = _layer(node, attrs, consts, ranks, bias)
        name = node_name(node, index)
        outputs = list((bias_add or node).output)
        if layer is not None:
            key = layer_key(name, taken)
            modules[key] = layer
            reads = _layer_reads(node, zeros)
            steps.append(Step(name, node.op_type, reads, outputs, attrs, [None] * len(reads), key))
        else:
            known = [consts.get(n) if n else None for n in node.input]
            steps.append(Step(name, node.op_type, list(node.input), outputs, attrs, known))
    steps = _live(steps, graph_outputs)
    modules = {key: layer for key, layer in modules.items() if any(step.layer == key for step in steps)}
    used = {n for step in steps for n in step.inputs} | graph_outputs
    inputs = [_spec(v) for v in graph.input if v.name not in consts]
    kept = {name: value for name, value in consts.items() if name in used}
    module = OnnxModule(steps, modules, kept, inputs, [_spec(v) for v in graph.output], opset)
    return module.eval()
