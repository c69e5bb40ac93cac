"""Which quantized nodes hurt accuracy most: ranked from one comparison of intermediate outputs.

quantize.auto ranks nodes by the error each one adds (its output's relative error minus its worst
input's) in the fully quantized model against the float model, measured by running both once with
their intermediate tensors exposed. That costs one pass over a few samples, where measuring each
node's effect on the metric (INC's one-by-one fallback) costs a quantization and an evaluation per
node: dozens of trials for a transformer. The ranking only orders the search; every candidate the
search keeps is then measured for real.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx

from engine.evaluate.node_errors import measure_nodes

SENSITIVITY_SAMPLES = 8


@dataclass(frozen=True)
class Sensitivity:
    """One quantized node and the error it was measured to add (None when it could not be measured)."""

    node: str
    op_type: str
    added_error: float | None
    relative_error: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able entry for the step's metrics."""
        return {
            "node": self.node,
            "op_type": self.op_type,
            "added_error": _finite(self.added_error),
            "relative_error": _finite(self.relative_error),
        }


def quantizable_op_types(mode: Literal["static", "dynamic"]) -> set[str]:
    """Op types onnxruntime's quantizer handles in this mode (its defaults when no op types are given)."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry, QLinearOpsRegistry

    if mode == "dynamic":
        return {*IntegerOpsRegistry, "Gemm"}
    return {*QDQRegistry, *QLinearOpsRegistry}


def quantized_nodes(
    prepared: onnx.ModelProto, candidate: onnx.ModelProto, mode: Literal["static", "dynamic"]
) -> list[str]:
    """Names of the float model's nodes that the candidate quantized, in graph order.

    A static (QDQ) candidate keeps a quantized node's name and feeds it dequantized tensors; a dynamic
    candidate replaces the node (a Gemm by a MatMul named `<name>_MatMul`, then quantized).
    """
    types = quantizable_op_types(mode)
    dequantized = {
        name for node in candidate.graph.node if node.op_type == "DequantizeLinear" for name in node.output
    }
    survivors = {node.name: node for node in candidate.graph.node}
    found = []
    for node in prepared.graph.node:
        if not node.name or node.op_type not in types:
            continue
        kept = survivors.get(node.name)
        if mode == "static":
            quantized = kept is not None and bool(dequantized.intersection(kept.input))
        else:
            quantized = kept is None and node.name + "_MatMul" not in survivors
        if quantized:
            found.append(node.name)
    return found


def rank_nodes(
    prepared: onnx.ModelProto,
    candidate: onnx.ModelProto,
    quantized: list[str],
    arrays: Mapping[str, np.ndarray],
    *,
    threads: int,
    budget_s: float,
) -> list[Sensitivity]:
    """The quantized nodes, most sensitive first: by added error, then by output error, then graph order."""
    measured = measure_nodes(
        prepared, candidate, arrays, threads=threads, budget_s=budget_s, samples=SENSITIVITY_SAMPLES
    )
    errors = {error.node: error for error in measured or []}
    op_types = {node.name: node.op_type for node in prepared.graph.node}
    ranked = []
    for name in quantized:
        error = errors.get(name)
        ranked.append(
            Sensitivity(
                name,
                op_types[name],
                error.added_error if error else None,
                error.relative_error if error else None,
            )
        )
    order = {name: index for index, name in enumerate(quantized)}
    return sorted(ranked, key=lambda item: (*_score(item), order[item.node]))


def _score(item: Sensitivity) -> tuple[float, float]:
    return _larger_first(item.added_error), _larger_first(item.relative_error)


def _larger_first(value: float | None) -> float:
    """Errors are non-negative: larger ones (an overflow first of all) sort first, unmeasured last."""
    return 1.0 if value is None or math.isnan(value) else -value


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
