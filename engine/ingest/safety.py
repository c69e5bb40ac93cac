"""Operator allowlist: standard ONNX domains only, no EPContext, and model-local functions resolved.

A model-local function is judged by its contents, not its name: onnxruntime runs a registered kernel
whenever one matches a function's (domain, name) — a function `com.microsoft::Gelu` whose body is a
Relu runs the contrib Gelu kernel — so every local function is inlined first, and the inlined graph,
with its subgraphs, must then use standard operators only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx
import onnx.inliner

from engine.contract import TechniqueError
from service.failures import InvalidModel, UnsafeModel

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
STANDARD_OPSETS = {"": onnx.defs.onnx_opset_version(), "ai.onnx": onnx.defs.onnx_opset_version()}


def vetted(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its local functions inlined, once its opsets and every operator pass the rules."""
    check_opsets(model)
    resolved = resolve_functions(model)
    check_operators(resolved)
    return resolved


def resolve_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Inline every call to a model-local function (nested calls and calls in subgraphs too)."""
    if not model.functions:
        return model
    try:
        resolved = onnx.inliner.inline_local_functions(model)
    except Exception:  # the inliner raises several unrelated types on a malformed function
        raise TechniqueError(
            InvalidModel,
            "the model's local functions cannot be resolved (a malformed or recursive function)",
        ) from None
    del resolved.functions[:]  # nothing may call them any more; what runs is the inlined graph
    return resolved


def check_opsets(model: onnx.ModelProto) -> None:
    """Refuse an opset of a standard domain that no released ONNX defines (e.g. opset 99)."""
    for entry in model.opset_import:
        highest = STANDARD_OPSETS.get(entry.domain)
        if highest is not None and not 1 <= entry.version <= highest:
            raise TechniqueError(
                InvalidModel,
                f"the model imports opset {entry.version} of the standard ONNX domain; opsets 1 to"
                f" {highest} are supported",
            )


def check_operators(model: onnx.ModelProto) -> None:
    """Raise `unsafe-model` for an EPContext node or an op outside the standard domains."""
    for node in iter_nodes(model):
        if node.op_type == "EPContext":
            raise TechniqueError(
                UnsafeModel,
                f"node {node.name[:200]!r} is an EPContext node, a precompiled engine; upload the original"
                " model",
            )
        if node.domain not in ALLOWED_DOMAINS:
            raise TechniqueError(
                UnsafeModel,
                f"node {node.name[:200]!r} uses operator {node.domain[:100]}::{node.op_type[:100]}; only the"
                f" standard ONNX domains {sorted(d or 'ai.onnx' for d in ALLOWED_DOMAINS - {''})} are"
                " accepted",
            )


def iter_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node of the model: main graph, subgraphs at any depth, and any local function bodies."""
    for function in model.functions:
        yield from _walk(function.node)
    yield from _walk(model.graph.node)


def _walk(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    for node in nodes:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attribute.g.node)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for graph in attribute.graphs:
                    yield from _walk(graph.node)
