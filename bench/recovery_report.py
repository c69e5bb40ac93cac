"""RECOVERY.md: machine, method, goal checks and the table of the recovery benchmark."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.pruning_recovery import Row
    from bench.recovery_setup import RecoveryReference

OURS = "ModelPress prune.structured (defaults)"
FOLDED = "Torch-Pruning (hand), same folded graph"
UNFOLDED = "Torch-Pruning (hand), unfolded model with BN"
PLAIN = "ModelPress, old recovery (l1, no norms, T=4, no held-out split)"
WITHIN_POINTS = 3.0
# Drops are means of whole test images: equal ones must not fail on rounding.
TIE = 1e-9


def _verdict(met: bool) -> str:
    return "**met**" if met else "**MISSED**"


def goal_lines(rows: list[Row]) -> list[str]:
    """Per setting: half of Torch-Pruning's drop on the folded graph, within 3 points of the unfolded
    model's, and the same graph (nodes) and speed as plain pruning."""
    lines = []
    for setting in sorted({(row.sparsity, row.epochs) for row in rows}, reverse=True):
        found = {row.recipe: row for row in rows if (row.sparsity, row.epochs) == setting}
        ours, folded, unfolded = found.get(OURS), found.get(FOLDED), found.get(UNFOLDED)
        label = f"{setting[0]:.0%} channels, {setting[1]} epoch(s)"
        if ours is None or folded is None or unfolded is None:
            lines.append(f"- {label}: not every recipe ran")
            continue
        lines.append(_same_counts(label, ours, folded, unfolded))
        half = ours.drop <= max(folded.drop, 0.0) / 2 + TIE
        near = ours.drop <= unfolded.drop + WITHIN_POINTS + TIE
        lines.append(
            f"- {label}: ModelPress mean drop {ours.drop:+.2f} points vs Torch-Pruning on the same folded"
            f" graph {folded.drop:+.2f} (goal: at most half, {folded.drop / 2:+.2f}): {_verdict(half)}; vs"
            f" Torch-Pruning on the unfolded model {unfolded.drop:+.2f} (goal: within {WITHIN_POINTS:g}"
            f" points): {_verdict(near)}."
        )
        plain = found.get(PLAIN)
        if plain is not None:
            same = ours.nodes == plain.nodes  # the goal: no node beyond what plain pruning exports
            lines.append(
                f"- {label}, graph and speed: {ours.nodes} nodes (plain pruning {plain.nodes}, Torch-Pruning"
                f" {folded.nodes}), batch-8 latency {ours.latency_ms:.3f} ms vs {plain.latency_ms:.3f} ms"
                f" plain ({plain.latency_ms / ours.latency_ms:.2f}x) and {folded.latency_ms:.3f} ms"
                f" Torch-Pruning ({folded.latency_ms / ours.latency_ms:.2f}x): {_verdict(same)} (no extra"
                " nodes: the re-inserted norms are folded back)."
            )
    return lines


def _same_counts(label: str, ours: Row, folded: Row, unfolded: Row) -> str:
    """Whether both sides pruned to the same network: the fairness condition of every other line."""
    same = ours.channels == folded.channels == unfolded.channels and ours.parameters == folded.parameters
    return (
        f"- {label}, same network on both sides: convolution widths {_widths(ours)} (ModelPress),"
        f" {_widths(folded)} and {_widths(unfolded)} (Torch-Pruning), {ours.parameters:,} vs"
        f" {folded.parameters:,} parameters: {_verdict(same)}."
    )


def _widths(row: Row) -> str:
    return "-".join(str(width) for width in row.channels)


def _table(rows: list[Row]) -> list[str]:
    lines = [
        "| channels removed | epochs | recipe | top-1 (mean) | drop (points, mean) | drop per seed |"
        " time (s) | nodes | conv widths | parameters | p50 batch 8 (ms) | notes (seed 0) |",
        "| ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.sparsity:.0%} | {r.epochs} | {r.recipe} | {r.top1:.4f} | {r.drop:+.2f} |"
            f" {', '.join(f'{drop:+.2f}' for drop in r.drops)} | {r.seconds:.1f} |"
            f" {r.nodes} | {_widths(r)} | {r.parameters:,} | {r.latency_ms:.3f} | {'; '.join(r.notes)} |"
        )
    return lines


def render(
    host: dict[str, Any], reference: RecoveryReference, rows: list[Row], settings: dict[str, Any]
) -> str:
    """The whole results file."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    versions = ", ".join(f"{name} {version}" for name, version in host["versions"].items())
    return "\n".join(
        [
            "# Accuracy recovery after structured pruning (BN-folded CNN)",
            "",
            f"Written by `python -m bench.pruning_recovery` on {stamp} in {settings['total_s']:.0f} s;"
            " re-run it to refresh.",
            "",
            "## Machine",
            "",
            f"- CPU: {host['cpu']}, {host['cores']} cores available, shared by 8 concurrent sessions while"
            " this ran (the bench is kept small for that reason: one torch thread, 200 timed runs per model)",
            f"- Python {host['python']}; {versions}",
            f"- load average at start {host['load']:.2f}, at end {settings['load_end']:.2f}",
            "",
            "## Method",
            "",
            "Model: a CNN nobody tunes for pruning, five 3x3 conv blocks (16-32-64-64-128 channels, each"
            " with batch norm and ReLU, max pooling after the 2nd and 4th), global average pooling and a"
            " linear head, trained with its batch norms on scikit-learn's digits upsampled to 16x16"
            f" (1437 training / 360 test images) for 8 epochs in {reference.train_seconds:.0f} s: top-1"
            f" {reference.accuracy:.4f}. Exported with the TorchScript exporter in eval mode, which folds"
            f" every batch norm into its convolution ({settings['original_nodes']} nodes, no"
            " BatchNormalization).",
            "",
            "Both sides get the same 1437 labelled training images and the same budget: the epochs in the"
            " table, Adam at learning rate 1e-3, batch 32. The hand recipe is Torch-Pruning 1.6's"
            " `MetaPruner` with `MagnitudeImportance(p=1)` (L1), the head ignored, fine-tuned with"
            " cross-entropy (cosine decay), on the folded model (a torch twin with each batch norm fused"
            " into its convolution, exactly the ONNX file's function) and on the unfolded model with its"
            " batch norms. ModelPress runs `prune.structured` on the ONNX file as a job step does, with its"
            " defaults: channels ranked by the first-order Taylor estimate on the fine-tuning data"
            " (`importance: auto`; an `l1` row shows the weight-norm ranking), batch norms re-inserted and"
            " set to the original's statistics, warm-up and cosine decay, distillation 0.5 at temperature 2,"
            " 10% of the training images held out to pick the best epoch (so it trains on fewer images than"
            " the hand recipe). Top-1 is on the 360 unseen test images, from the exported ONNX files on"
            " onnxruntime; drop is in points against the original. One test image is 0.28 points, so every"
            f" recipe runs with {settings['seeds']} fine-tuning seeds (0, 1, ...: the shuffling on both"
            " sides, and ModelPress's held-out split) and the goals compare mean drops; the per-seed drops"
            " are in the table. Latency: median of 200 runs at batch 8, one intra-op thread, on seed 0's"
            " export.",
            "",
            "Same network on both sides: each convolution keeps its share of channels rounded up to a"
            " multiple of 8 (ModelPress's `round_to=8` rule), and Torch-Pruning is given these counts layer"
            " by layer (`pruning_ratio_dict`, its own `round_to` off) instead of its own rounding, which"
            " floors the count (at 30% it would keep 8-16-40-40-88 channels where ModelPress keeps"
            " 16-24-48-48-96: a smaller network, so the comparison measured the rounding, not the"
            " recovery). The bench checks the exported convolution widths and parameter counts are equal"
            " (the first goal line of each setting); only which channels go differs, each side ranking them"
            " its own way. At 50% both rules give the same counts.",
            "",
            "## Goal check",
            "",
            *goal_lines(rows),
            "",
            "## Results",
            "",
            *_table(rows),
        ]
    )
