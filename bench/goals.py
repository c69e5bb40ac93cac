"""The issue's goals, checked against a run's rows: each goal stated, then met or missed and by how much."""

from __future__ import annotations

from bench.headtohead import Duel
from bench.pairs import BATCH, ENCODER_COSINE, ENCODERS, FP32, best_match, int8
from bench.report import ModelResult, Row

CONV_SPEEDUP, CONV_MAX_DROP = 3.0, 0.005
ENCODER_SPEEDUP = 1.8
AUTO_BUDGET = 0.01


def speedups(result: ModelResult, row: Row) -> tuple[float, float, str]:
    """Speedup over fp32 at batch 1 and 8: from the head-to-head re-timing when there is one."""
    duel = next((d for d in result.duels if (d.hand, d.modelpress) == (FP32, row.recipe)), None)
    if duel is None:
        return row.speedup(1), row.speedup(BATCH), "table"
    return duel.median(1), duel.median(BATCH), f"head to head, noise floor ±{100 * duel.tolerance:.0f}%"


def _mark(met: bool) -> str:
    return "**met**" if met else "**NOT met**"


def goal_lines(results: list[ModelResult]) -> list[str]:
    """Every goal with its verdict per model."""
    return [*_conv(results), *_encoder(results), *_as_fast(results), *_auto(results)]


def _conv(results: list[ModelResult]) -> list[str]:
    lines = [
        f"**Convolutional model, static int8: >= {CONV_SPEEDUP:g}x faster than fp32 at batch {BATCH},"
        f" <= {100 * CONV_MAX_DROP:g} point top-1 drop.**",
        "",
    ]
    for result in (r for r in results if r.name == "conv"):
        row = next((r for r in result.rows if r.recipe == "quantize.static" and r.comparison), None)
        if row is None:
            lines.append("- conv: quantize.static failed: **NOT met**")
            continue
        _, fast, source = speedups(result, row)
        met = fast >= CONV_SPEEDUP and row.drop <= CONV_MAX_DROP
        lines.append(
            f"- conv, quantize.static: {fast:.2f}x ({source}), top-1 drop {100 * row.drop:+.2f} points:"
            f" {_mark(met)}"
        )
    return [*lines, ""]


def _encoder(results: list[ModelResult]) -> list[str]:
    lines = [
        f"**Transformer encoder: dynamic or static int8 >= {ENCODER_SPEEDUP:g}x faster than fp32 (batch"
        f" {BATCH}) with mean output cosine >= {ENCODER_COSINE:g}.**",
        "",
    ]
    for result in (r for r in results if r.name in ENCODERS):
        ours = [row for row in result.rows if int8(row) and row.comparison]
        good = [row for row in ours if row.cosine >= ENCODER_COSINE]
        if not ours:
            lines.append(f"- {result.name}: no ModelPress int8 recipe succeeded: **NOT met**")
            continue
        best = max(good or ours, key=lambda row: speedups(result, row)[1])
        slow, fast, source = speedups(result, best)
        met = fast >= ENCODER_SPEEDUP and best.cosine >= ENCODER_COSINE
        hand = next((row for row in result.rows if row.recipe.startswith("ort quantize_dynamic")), None)
        per_tensor = (
            f"; per-tensor hand dynamic: cosine {hand.cosine:.4f}" if hand and hand.comparison else ""
        )
        lines.append(
            f"- {result.name}, {best.recipe}: {fast:.2f}x at batch {BATCH} ({slow:.2f}x at batch 1;"
            f" {source}), cosine {best.cosine:.5f}{per_tensor}: {_mark(met)}"
        )
    return [*lines, ""]


def _as_fast(results: list[ModelResult]) -> list[str]:
    lines = [
        "**Every reference model: ModelPress's best recipe is at least as fast as the hand recipe at equal or"
        " better accuracy, and quantize.dynamic matches hand dynamic.** Each hand recipe is timed head to"
        " head against ModelPress's fastest recipe with at least its top-1 (ratio = hand time / ModelPress"
        " time, above 1 means ModelPress is faster; median of the repeats, with the A/A noise floor).",
        "",
    ]
    for result in results:
        hand = [row for row in result.rows if row.who == "hand" and row.comparison]
        if not hand:
            continue
        ours = [row for row in result.rows if row.who == "ModelPress" and not row.ablation and row.comparison]
        items, met = [], True
        for row in hand:
            match = best_match(row, ours)
            if match is None:
                items.append(f"  - no ModelPress recipe reaches {row.recipe}'s top-1 ({row.top1:.4f})")
                met = False
            elif not any((d.hand, d.modelpress) == (row.recipe, match.recipe) for d in result.duels):
                items.append(
                    f"  - {match.recipe} vs {row.recipe}: {match.speedup(BATCH):.2f}x vs"
                    f" {row.speedup(BATCH):.2f}x over fp32 in the tables, a gap far beyond noise: as fast"
                )
        for duel in (d for d in result.duels if d.hand in {row.recipe for row in hand}):
            met = met and duel.as_fast(BATCH)
            items.append(f"  - {_duel_text(duel, result.rows)}")
        lines += [f"- {result.name}: {_mark(met)}", *items]
    return [*lines, ""]


def _duel_text(duel: Duel, rows: list[Row]) -> str:
    top1 = {row.recipe: row.top1 for row in rows}
    ratios = ", ".join(f"batch {b}: {duel.median(b):.2f}x" for b in duel.ratios)
    slower = 100 * (1 - duel.median(BATCH))
    verdict = "as fast" if duel.as_fast(BATCH) else f"ModelPress {slower:.0f}% slower at batch {BATCH}"
    return (
        f"{duel.modelpress} (top-1 {top1.get(duel.modelpress, 0):.4f}) vs {duel.hand} (top-1"
        f" {top1.get(duel.hand, 0):.4f}): {ratios}, noise floor ±{100 * duel.tolerance:.0f}%: {verdict}"
    )


def _auto(results: list[ModelResult]) -> list[str]:
    lines = [f"**quantize.auto meets a {100 * AUTO_BUDGET:g}-point budget wherever any recipe can.**", ""]
    for result in results:
        auto = next((row for row in result.rows if row.recipe.startswith("quantize.auto")), None)
        if auto is None:
            lines.append(f"- {result.name}: not measured: quantize.auto is not in the technique catalog yet")
            continue
        able = [
            row
            for row in result.rows
            if row.comparison and row.drop <= AUTO_BUDGET and "fp16" not in row.recipe
        ]
        if not able:
            lines.append(f"- {result.name}: no int8 recipe stays within {100 * AUTO_BUDGET:g} point: n/a")
            continue
        met = auto.comparison is not None and auto.drop <= AUTO_BUDGET
        figure = (
            f"drop {100 * auto.drop:+.2f} points, {auto.speedup(BATCH):.2f}x" if auto.comparison else "failed"
        )
        lines.append(f"- {result.name}: quantize.auto {figure}: {_mark(met)}")
    return [*lines, ""]
