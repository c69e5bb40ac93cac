"""Operator allowlist: standard ONNX domains only, and never an EPContext (a precompiled engine)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx

from worker.techniques.base import TechniqueError

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


def check_operators(model: onnx.ModelProto) -> None:
    """Raise `unsafe-model` for an EPContext node or an op outside the standard domains.

    A call to one of the model's own functions is allowed whatever its domain, because the
    function's body is checked by the same rule.
    """
    local = {(function.domain, function.name) for function in model.functions}
    for node in iter_nodes(model):
        if node.op_type == "EPContext":
            raise TechniqueError(
                "unsafe-model",
                f"node {node.name!r} is an EPContext node, a precompiled engine; upload the original model",
            )
        if node.domain not in ALLOWED_DOMAINS and (node.domain, node.op_type) not in local:
            raise TechniqueError(
                "unsafe-model",
                f"node {node.name!r} uses custom operator {node.domain}::{node.op_type}; only the standard"
                f" ONNX domains {sorted(d or 'ai.onnx' for d in ALLOWED_DOMAINS - {''})} are accepted",
            )


def iter_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node of the model: main graph, subgraphs and local function bodies."""
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
