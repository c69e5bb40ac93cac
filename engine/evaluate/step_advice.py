"""Advice for one step: which of its own settings would rescue the result, from where the error is.

Only settings the step's technique accepts are suggested, and never one the step already used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from service.catalog import CATALOG

# The layers that carry most of the arithmetic; quantizing only these keeps most of the speed.
HEAVY_OPS = ("Conv", "MatMul", "Gemm")
# An op type carrying at least this share of the added error is named as a cause.
CARRIER_SHARE = 0.25
# Ops that move or index values without arithmetic: an error "added" there was made upstream, in a
# tensor the node-error analysis could not compare (an LSTM's full sequence output, say).
MOVEMENT_OPS = frozenset(
    {
        "Gather",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Slice",
        "Concat",
        "Split",
        "Identity",
    }
)
WORST_NODES = 3


def error_carriers(node_errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """The op types whose nodes add at least CARRIER_SHARE of the error, largest first."""
    totals: dict[str, float] = {}
    for entry in node_errors:
        added = entry.get("added_error")
        if added is not None and added > 0 and entry["op_type"] not in MOVEMENT_OPS:
            totals[entry["op_type"]] = totals.get(entry["op_type"], 0.0) + float(added)
    total = sum(totals.values())
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [op for op, added in ranked if total > 0 and added / total >= CARRIER_SHARE]


def effective_params(technique: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The step's params with the catalog's defaults filled in; None for an unknown technique."""
    spec = CATALOG.get(technique)
    if spec is None:
        return None
    try:
        return spec.params.model_validate(dict(params)).model_dump()
    except ValidationError:
        return dict(params)


def rescue(
    technique: str,
    params: Mapping[str, Any],
    node_errors: Sequence[Mapping[str, Any]],
    baseline_ops: Mapping[str, int],
) -> list[str]:
    """Settings of `technique` worth trying, each as text naming the setting and why."""
    used = effective_params(technique, params)
    if used is None:
        return []
    carriers = error_carriers(node_errors)
    hints: list[str] = []
    if "op_types" in used and technique.startswith("quantize."):
        hints += _only_heavy(used.get("op_types"), carriers, baseline_ops)
    if "op_block_list" in used:
        blocked = list(used.get("op_block_list") or [])
        more = [op for op in carriers if op not in blocked]
        if more:
            hints.append(f"op_block_list {json.dumps(blocked + more)} keeps {', '.join(more)} in float32")
    if "per_channel" in used and used["per_channel"] is not True:
        hints.append("per_channel true (one scale per output channel)")
    if "calibration_method" in used and used["calibration_method"] == "MinMax":
        hints.append('calibration_method "Entropy" or "Percentile" (outliers stop stretching the ranges)')
    excluded_key = "nodes_to_exclude" if "nodes_to_exclude" in used else None
    if excluded_key and node_errors:
        hints += _exclude_worst(list(used.get(excluded_key) or []), node_errors)
    if "finetune" in used and not used["finetune"]:
        hints.append("finetune (train after pruning to recover accuracy)")
    if "sparsity" in used and isinstance(used["sparsity"], float):
        hints.append(f"a lower sparsity than {used['sparsity']:g}")
    if "float_zero_points" in used:
        hints += _finer_blocks(used)
    return hints


def _finer_blocks(used: Mapping[str, Any]) -> list[str]:
    """Weight-only settings that keep more of each block's range, the largest win first."""
    hints = []
    # SmolLM2-135M int4 rtn: +80% perplexity in blocks of 128, +5% in blocks of 32 with float zero
    # points (bench/WEIGHT_ONLY_VARIANTS.md).
    if used.get("block_size", 0) > 32:
        hints.append(f"block_size 32 (a scale per 32 weights, not per {used['block_size']})")
    if used.get("algorithm") == "rtn" and not used.get("float_zero_points") and used.get("bits") == 4:
        hints.append("float_zero_points true (each block keeps its exact minimum)")
    if used.get("algorithm") == "rtn":
        hints.append("algorithm gptq with a dataset_id (compensates rounding errors on calibration text)")
    return hints


def _only_heavy(current: Any, carriers: list[str], baseline_ops: Mapping[str, int]) -> list[str]:
    keep = [op for op in HEAVY_OPS if baseline_ops.get(op) and op not in carriers]
    if not keep or (current is not None and set(current) <= set(keep)):
        return []
    kept_float = [op for op in carriers if op not in HEAVY_OPS] or [
        op for op in baseline_ops if op not in HEAVY_OPS
    ][:3]
    why = f" keeps {', '.join(kept_float)} in float, where the error is added" if carriers else ""
    return [f"op_types {json.dumps(keep)}{why}"]


def _exclude_worst(excluded: list[str], node_errors: Sequence[Mapping[str, Any]]) -> list[str]:
    ranked = sorted(
        (
            entry
            for entry in node_errors
            if (entry.get("added_error") or 0) > 0 and entry["op_type"] not in MOVEMENT_OPS
        ),
        key=lambda entry: -float(entry["added_error"]),
    )
    worst = [entry["node"] for entry in ranked if entry["node"] not in excluded][:WORST_NODES]
    return [f"nodes_to_exclude {json.dumps(excluded + worst)}"] if worst else []


def step_hint(
    step: Mapping[str, Any],
    node_errors: Sequence[Mapping[str, Any]],
    baseline_ops: Mapping[str, int],
    why: str,
) -> str:
    """One sentence naming the responsible step and the settings of it to try; "" when none apply."""
    technique = str(step["technique"])
    tries = rescue(technique, step.get("params") or {}, node_errors, baseline_ops)
    if not tries:
        return ""
    return f"step {step['index']} ({technique}) {why}; try {technique} with " + ", or ".join(tries)
