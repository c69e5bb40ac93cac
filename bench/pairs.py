"""Which candidates the harness times head to head, beyond each recipe's own pair with fp32."""

from __future__ import annotations

from bench.report import Row

FP32 = "fp32"
BATCH = 8
CONV_MODEL = "conv"
ENCODERS = ("attention", "attention-outliers")
ENCODER_COSINE = 0.99
# A ModelPress candidate this many times faster than the hand one in the tables needs no re-timing.
OBVIOUS = 1.5


def int8(row: Row) -> bool:
    """A candidate of one of ModelPress's own int8 recipes at default parameters (not an ablation)."""
    return row.who == "ModelPress" and not row.ablation and "fp16" not in row.recipe


def best_match(hand: Row, ours: list[Row]) -> Row | None:
    """ModelPress's fastest row (batch 8) whose top-1 is at least the hand row's."""
    eligible = [row for row in ours if row.comparison and row.top1 >= hand.top1]
    return max(eligible, key=lambda row: row.speedup(BATCH)) if eligible else None


def contenders(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(hand, ModelPress) pairs to re-time: each hand recipe against ModelPress's fastest recipe with at
    least its top-1 (unless the tables already show a gap far beyond noise), and the two dynamic ones."""
    ours = [row for row in rows if row.who == "ModelPress" and not row.ablation and row.comparison]
    pairs = []
    for hand in (row for row in rows if row.who == "hand" and row.comparison):
        match = best_match(hand, ours)
        if match and match.speedup(BATCH) < OBVIOUS * hand.speedup(BATCH):
            pairs.append((hand, match))
    by_name = {row.recipe: row for row in rows if row.comparison}
    dynamic = (by_name.get("ort quantize_dynamic, defaults"), by_name.get("quantize.dynamic"))
    if dynamic[0] and dynamic[1] and dynamic not in pairs:
        pairs.append((dynamic[0], dynamic[1]))
    return pairs


def goal_candidates(model: str, rows: list[Row]) -> list[Row]:
    """Candidates whose speedup over fp32 a goal depends on: re-timed against fp32 head to head."""
    if model == CONV_MODEL:
        return [row for row in rows if row.recipe == "quantize.static" and row.comparison]
    if model in ENCODERS:
        faithful = [row for row in rows if int8(row) and row.comparison and row.cosine >= ENCODER_COSINE]
        return [row for row in faithful if row.recipe in ("quantize.dynamic", "quantize.static")]
    return []


def ablation_pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(default, ablation) pairs where only speed can tell them apart (same top-1): re-timed to show
    what the default is worth."""
    by_name = {row.recipe: row for row in rows if row.comparison}
    pairs = []
    for row in (r for r in rows if r.ablation and r.comparison):
        default = by_name.get(row.recipe.split(",")[0])
        if default is not None and default.top1 == row.top1:
            pairs.append((default, row))
    return pairs
