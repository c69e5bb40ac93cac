"""What to try instead, when a candidate is not faster, not smaller or not accurate enough.

Each hint names the technique known to fix the situation for the kind of candidate at hand
(engine.evaluate.precision); None means nothing better is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.evaluate.precision import BLOCK_WEIGHTS, DYNAMIC_INT8, FLOAT16, STATIC_INT8, WEIGHT_ONLY

# Below this share of non-zero weights a candidate counts as pruned.
PRUNED_DENSITY = 0.9


def not_faster(kind: str | None, used_op_types: Sequence[str] | None = None) -> str | None:
    """Why this kind of candidate gains no speed on a CPU, and what does.

    `used_op_types` is the op-type list the step already quantized; it is not suggested again.
    """
    if kind == STATIC_INT8 and used_op_types:
        return (
            f"static int8 of only {', '.join(used_op_types)} is not faster here: the Quantize/Dequantize"
            "Linear pairs around each layer cost more than the int8 arithmetic saves at these layer sizes;"
            " keep the fp32 model, or see the profile for where the time goes"
        )
    if kind == STATIC_INT8:
        return (
            "static int8 is not faster here: the Quantize/DequantizeLinear pairs around each layer cost"
            " more than the int8 arithmetic saves at these layer sizes; quantize only the heavy layers"
            ' (quantize.static with op_types ["Conv", "MatMul", "Gemm"]) or keep the fp32 model'
        )
    if kind == FLOAT16:
        return (
            "float16 is not faster on this CPU, whose kernels compute in float32 behind inserted casts;"
            " for CPU speed try quantize.static (int8), and keep float16 for GPUs (tensorrt.build)"
        )
    if kind == WEIGHT_ONLY:
        return "weight-only quantization saves memory, not time, on a CPU; for speed try quantize.static"
    if kind == BLOCK_WEIGHTS:
        return (
            "block-wise low-bit weights pay off where reading weights dominates (large MatMuls, small"
            " batches: decoding); at these sizes unpacking costs more than it saves; keep accuracy_level"
            " 4 (int8 compute), or for encoders and large batches try quantize.dynamic or quantize.static"
        )
    return None


def not_smaller(kind: str | None, density: float | None) -> str | None:
    """Why the file did not shrink, and what shrinks it."""
    if kind is None and density is not None and density < PRUNED_DENSITY:
        return (
            f"{1 - density:.0%} of the weights are zero but still stored densely; prune.structured removes"
            " whole channels and shrinks the file, or follow the pruning with quantize.static"
        )
    if kind in (DYNAMIC_INT8, STATIC_INT8, WEIGHT_ONLY, BLOCK_WEIGHTS):
        return (
            "the int8 model's scales, zero points and added nodes outweigh what its quantized weights"
            " save (few or small weights were quantized)"
        )
    if kind == FLOAT16:
        return "most weights stayed float32 (blocked op types or excluded nodes); fewer exclusions shrink it"
    return None


def over_budget(
    kind: str | None, max_accuracy_drop: float | None, node_errors: Sequence[Mapping[str, Any]]
) -> str:
    """What recovers accuracy for this kind of candidate, and where the error starts; "" when unknown."""
    budget = f"max_accuracy_drop={max_accuracy_drop:g}" if max_accuracy_drop is not None else "a budget"
    hints = {
        STATIC_INT8: f"try quantize.auto with {budget} (keeps the most sensitive nodes in float),"
        ' per_channel true, or calibration_method "Entropy" or "Percentile"',
        DYNAMIC_INT8: f"try per_channel true, or quantize.auto with {budget} (calibrated static int8 that"
        " keeps the most sensitive nodes in float)",
        WEIGHT_ONLY: f"try quantize.auto with {budget}",
        BLOCK_WEIGHTS: "try a smaller block_size, algorithm hqq or gptq, bits 8, or keep the most"
        " sensitive MatMuls (often the output projection, lm_head) in float with nodes_to_exclude",
        FLOAT16: "keep the diverging op types in float32 (quantize.fp16 op_block_list or nodes_to_exclude)",
    }
    parts = [hints[kind]] if kind in hints else []
    location = error_location(node_errors)
    return "; ".join(parts + ([location] if location else []))


def error_location(node_errors: Sequence[Mapping[str, Any]]) -> str:
    """The node that adds the largest error beyond its inputs', as text; "" when none adds any."""
    worst = max(
        (entry for entry in node_errors if entry.get("added_error") is not None),
        key=lambda entry: entry["added_error"],
        default=None,
    )
    if worst is None or worst["added_error"] <= 0:
        return ""
    return (
        f"the largest error is added at node {worst['node']} ({worst['op_type']}, relative error"
        f" {worst['added_error']:.3g} beyond its inputs'; see node_errors)"
    )
