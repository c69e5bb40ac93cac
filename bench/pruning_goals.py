"""The issue's bars for pruning, checked against one run's comparisons, each line saying why."""

from __future__ import annotations

from typing import Any

from bench.pruning_report import PruneRow

STRUCTURED = "prune.structured 50% + fine-tuning"
CHAINED = "prune.structured 50% + fine-tuning -> quantize.static"
UNSTRUCTURED = ("prune.magnitude 50% (global)", "prune.nm 2:4")
# (recipe, minimum speedup at batch 8, maximum top-1 drop)
BARS = ((STRUCTURED, 2.0, 0.01), (CHAINED, 5.0, 0.015))
# Speed differences below 5% are run-to-run noise on a shared CPU (the verdict's threshold too).
NOISE = 1.05
# "Equal accuracy": within two of the 360 test images.
EQUAL_ACCURACY = 2 / 360


def _verdict(met: bool) -> str:
    return "**met**" if met else "**MISSED**"


def _bar(row: PruneRow, speedup_goal: float, drop_goal: float) -> str:
    comparison = row.comparison
    assert comparison is not None
    speedup, drop = comparison["delta"]["speedup"]["8"], comparison["delta"]["accuracy_drop"]
    kept = comparison["candidate"]["parameters"] / comparison["baseline"]["parameters"]
    met = speedup >= speedup_goal and drop <= drop_goal
    return (
        f"- {row.recipe}, batch 8: {speedup:.2f}x faster than the fp32 original (goal >= {speedup_goal:g}x,"
        f" margin {speedup - speedup_goal:+.2f}x), top-1 drop {100 * drop:+.2f} points (goal <="
        f" {100 * drop_goal:g}, margin {100 * (drop_goal - drop):+.2f}): {_verdict(met)}. Why: it keeps"
        f" {100 * kept:.0f}% of the parameters as physically smaller tensors, so every convolution does"
        " about that share of the work on any runtime"
        + (
            "; int8 kernels then run that smaller model faster again."
            if "quantize.static" in row.recipe
            else "."
        )
    )


def _head_to_head(ours: PruneRow, hand: PruneRow, pair: dict[str, Any]) -> str:
    """ModelPress's structured pruning against Torch-Pruning's, timed as one interleaved pair."""
    assert ours.comparison is not None and hand.comparison is not None
    ours_top1 = ours.comparison["candidate"]["accuracy"]["top1"]
    hand_top1 = hand.comparison["candidate"]["accuracy"]["top1"]
    speed = pair["delta"]["speedup"]
    as_fast = all(value >= 1 / NOISE for value in speed.values())
    as_accurate = ours_top1 >= hand_top1 - EQUAL_ACCURACY
    shapes = ours.comparison["candidate"]["parameters"] == hand.comparison["candidate"]["parameters"]
    why = (
        "both keep the same channel counts, so both models do the same work"
        if shapes
        else "the two keep different channel counts"
    )
    return (
        "- ModelPress vs Torch-Pruning (hand), both 50% L1 with the same fine-tuning budget, timed head to"
        f" head: ModelPress's model is {speed['1']:.2f}x (batch 1) and {speed['8']:.2f}x (batch 8) the speed"
        f" of Torch-Pruning's (goal >= 1, within the {100 * (NOISE - 1):.0f}% noise band), top-1"
        f" {ours_top1:.4f} vs {hand_top1:.4f} (equal: within {100 * EQUAL_ACCURACY:.2f} points):"
        f" {_verdict(as_fast and as_accurate)}. Why: {why}. On accuracy, Torch-Pruning's torch model"
        " fine-tunes with its batch norms, which re-normalize the pruned layers' outputs at once, while"
        " ModelPress's bridged model has them folded into the convolutions, as in the ONNX file; ModelPress"
        " makes up for it by distilling from the original model (see the labels-only row for without)."
    )


def _unstructured(row: PruneRow) -> str:
    assert row.comparison is not None
    delta = row.comparison["delta"]
    return (
        f"- {row.recipe} (no goal; for the record): {delta['speedup']['8']:.2f}x the speed at batch 8 and"
        f" {delta['size_ratio']:.2f}x the file size, but {delta['compressed_size_ratio']:.2f}x the gzip size:"
        " zeroed weights keep every tensor's shape, so onnxruntime's dense CPU kernels do the same work and"
        " only compression (or a sparse runtime such as TensorRT for 2:4) turns the zeros into a saving."
    )


def goal_lines(rows: list[PruneRow], head_to_head: dict[str, Any] | None) -> list[str]:
    """One line per goal: met or missed, by how much, and why."""
    by_name = {row.recipe: row for row in rows}
    lines = []
    for name, speedup, drop in BARS:
        row = by_name.get(name)
        if row is None or row.comparison is None:
            lines.append(f"- {name}: **MISSED**, the recipe failed: {row.error if row else 'not run'}")
        else:
            lines.append(_bar(row, speedup, drop))
    ours, hand = by_name.get(STRUCTURED), next((r for r in rows if r.who == "hand"), None)
    if ours and hand and ours.comparison and hand.comparison and head_to_head:
        lines.append(_head_to_head(ours, hand, head_to_head))
    else:
        lines.append(
            "- ModelPress vs Torch-Pruning: **MISSED**, one of the two recipes failed (see the table)"
        )
    lines += [_unstructured(by_name[n]) for n in UNSTRUCTURED if n in by_name and by_name[n].comparison]
    return lines
