"""quantize.fp16: float16 weights and compute, with float32 inputs, outputs and sensitive ops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from engine.contract import StepContext, StepOutcome, TechniqueError
from service.catalog.quantize_fp16 import Fp16Params
from service.errors import InvalidParams
from service.failures import QuantizationFailed

if TYPE_CHECKING:
    import onnx

_FP16_MAX = 65504.0
CPU_WARNING = (
    "float16 is usually not faster on a CPU: most CPU kernels compute in float32, so onnxruntime adds "
    "casts around them; it pays off on GPUs. The file is about half the size."
)


def run(model_path: Path, output_path: Path, params: Fp16Params, ctx: StepContext) -> StepOutcome:
    """Convert float32 tensors and compute to float16, keeping the model's float32 interface."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from engine.model_size import needs_side_file

    model = onnx.load(str(model_path))
    unknown = sorted(set(params.nodes_to_exclude) - {node.name for node in model.graph.node})
    if unknown:
        raise TechniqueError(InvalidParams, f"nodes_to_exclude names nodes the model lacks: {unknown}")
    _name_unnamed_nodes(model.graph)
    warnings = [CPU_WARNING]
    too_large = _out_of_range_readers(model)
    if too_large:
        warnings.append(
            f"{len(too_large)} nodes kept in float32: their weights exceed float16's range "
            f"(±{_FP16_MAX:g}), which clipping would change (e.g. a BatchNormalization variance of 1e7)"
        )
    large = needs_side_file(model)
    ctx.progress(0.1, "converting to float16")
    converted = convert_float_to_float16(
        model,
        keep_io_types=True,
        # onnxruntime's own list holds ops with no float16 kernel at all, so it always applies.
        op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(params.op_block_list)),
        node_block_list=[*params.nodes_to_exclude, *_transposes_into_matmul(model), *too_large],
        # onnx's in-memory shape inference refuses models past 2 GiB.
        disable_shape_infer=large,
    )
    _drop_duplicate_nodes(converted.graph)
    _return_to_branches(converted.graph, set())
    _sort_topologically(converted.graph)
    if not large:  # the checker takes a model in memory only below 2 GiB
        _check_converted(converted)
    onnx.save(converted, str(output_path), save_as_external_data=large, location=f"{output_path.name}.data")
    ctx.progress(1.0, "converted")
    return StepOutcome(metrics=_census(converted), warnings=warnings)


def _name_unnamed_nodes(graph: onnx.GraphProto) -> None:
    """Give every node a unique name, since the converter's node block list matches by name."""
    taken = {node.name for node in graph.node}
    for index, node in enumerate(graph.node):
        if not node.name:
            suffix = index
            while f"{node.op_type}_{suffix}" in taken:
                suffix += 1
            node.name = f"{node.op_type}_{suffix}"
            taken.add(node.name)


def _transposes_into_matmul(model: onnx.ModelProto) -> list[str]:
    """Transpose nodes feeding a MatMul or Gemm, which must stay float32.

    onnxruntime's CPU NchwcTransformer dereferences a null pointer on Transpose -> Cast(fp16->fp32) ->
    MatMul, the chain it builds itself around a float16 Transpose feeding a MatMul
    (microsoft/onnxruntime#28392; still crashes 1.31.1 on x86-64).
    """
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Transpose" and consumers.get(node.output[0], set()) & {"MatMul", "Gemm"}
    ]


def _drop_duplicate_nodes(graph: onnx.GraphProto) -> None:
    """Remove exact copies of a node, which the converter emits when one tensor feeds two blocked nodes."""
    seen: set[bytes] = set()
    copies = []
    for index, node in enumerate(graph.node):
        key = node.SerializeToString(deterministic=True)
        if key in seen:
            copies.append(index)
        seen.add(key)
        for subgraph in _subgraphs(node):
            _drop_duplicate_nodes(subgraph)
    for index in reversed(copies):
        del graph.node[index]


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each follows its producers, as the ONNX spec requires.

    The converter appends its input casts at the end of the graph; onnxruntime sorts for itself,
    but the checker and other consumers (the torch bridge, TensorRT's parser) expect order.
    """
    import heapq

    import onnx

    producer = {name: index for index, node in enumerate(graph.node) for name in node.output if name}
    waiting_on = [
        {producer[name] for name in (*node.input, *_outer_reads(node)) if name in producer} - {index}
        for index, node in enumerate(graph.node)
    ]
    dependents: dict[int, list[int]] = {}
    for index, needs in enumerate(waiting_on):
        for need in needs:
            dependents.setdefault(need, []).append(index)
    ready = [index for index, needs in enumerate(waiting_on) if not needs]
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for dependent in dependents.get(index, []):
            waiting_on[dependent].discard(index)
            if not waiting_on[dependent]:
                heapq.heappush(ready, dependent)
    if len(order) < len(graph.node) or order == sorted(order):
        return  # a cycle is the converter's to report; an already sorted graph needs nothing
    nodes = [onnx.NodeProto() for _ in order]
    for node, index in zip(nodes, order, strict=True):
        node.CopyFrom(graph.node[index])
    del graph.node[:]
    graph.node.extend(nodes)


def _check_converted(model: onnx.ModelProto) -> None:
    """quantization-failed, naming the problem, when the converter's graph is not valid ONNX."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise TechniqueError(
            QuantizationFailed,
            f"the float16 converter wrote an invalid graph ({str(error).strip().splitlines()[0][:200]});"
            " keep the node it names in float32 with nodes_to_exclude or op_block_list",
        ) from None


def _return_to_branches(graph: onnx.GraphProto, outer: set[str]) -> None:
    """Move nodes that read a value of one of the graph's If/Loop bodies into that body.

    The converter casts a blocked node's float16 input inside a branch back to float32, but appends
    the Cast to the main graph, where the branch's value does not exist (silero-vad: 'slice_2 is not
    a graph input'); the Cast belongs right after its input's producer, in the branch.
    """
    here = {value.name for value in (*graph.input, *graph.initializer)}
    here |= {name for node in graph.node for name in node.output}
    for node in list(graph.node):
        missing = [name for name in node.input if name and name not in here and name not in outer]
        found = _producing_body(graph, missing[0]) if missing else None
        if found is not None:
            body, index = found
            graph.node.remove(node)
            body.node.insert(index + 1, node)
    for node in graph.node:
        for subgraph in _subgraphs(node):
            _return_to_branches(subgraph, outer | here)


def _producing_body(graph: onnx.GraphProto, name: str) -> tuple[onnx.GraphProto, int] | None:
    """The If/Loop/Scan body below `graph` holding `name`, and its producer's index (-1: a body input)."""
    for node in graph.node:
        for subgraph in _subgraphs(node):
            if any(value.name == name for value in subgraph.input):  # a Loop's carried state
                return subgraph, -1
            for index, inner in enumerate(subgraph.node):
                if name in inner.output:
                    return subgraph, index
            found = _producing_body(subgraph, name)
            if found is not None:
                return found
    return None


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The bodies a node holds (If branches, Loop and Scan bodies)."""
    for attribute in node.attribute:
        if attribute.HasField("g"):
            yield attribute.g
        yield from attribute.graphs


def _outer_reads(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing graph."""
    reads: set[str] = set()
    for subgraph in _subgraphs(node):
        local = {value.name for value in (*subgraph.input, *subgraph.initializer)}
        local |= {name for inner in subgraph.node for name in inner.output}
        for inner in subgraph.node:
            reads |= {name for name in (*inner.input, *_outer_reads(inner)) if name and name not in local}
    return reads


def _out_of_range_readers(model: onnx.ModelProto) -> list[str]:
    """Nodes reading a float32 weight float16 cannot represent: left in float32.

    The converter would clip such a weight to ±65504, which silently changes what the node computes;
    a node left out of the conversion keeps its weights in float32 (casts go around it). A Constant
    node holding such a value (a graph ingest could not normalize) becomes an initializer first,
    since the converter rewrites Constant values whatever the block list says.
    """
    from onnx import TensorProto, numpy_helper

    def beyond(tensor: TensorProto) -> bool:
        if tensor.data_type != TensorProto.FLOAT:
            return False
        return bool((abs(numpy_helper.to_array(tensor)) > _FP16_MAX).any())

    for node in list(model.graph.node):
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None and beyond(value):
            lifted = TensorProto()
            lifted.CopyFrom(value)
            lifted.name = node.output[0]
            model.graph.initializer.append(lifted)
            model.graph.node.remove(node)
    large = {tensor.name for tensor in model.graph.initializer if beyond(tensor)}
    return [node.name for node in model.graph.node if large.intersection(node.input)]


def _census(model: onnx.ModelProto) -> dict[str, int]:
    """Weights converted, weights left in float32, and casts the conversion added."""
    from onnx import TensorProto

    types = [tensor.data_type for tensor in model.graph.initializer]
    return {
        "float16_initializers": types.count(TensorProto.FLOAT16),
        "float32_initializers": types.count(TensorProto.FLOAT),
        "casts": sum(node.op_type == "Cast" for node in model.graph.node),
    }
