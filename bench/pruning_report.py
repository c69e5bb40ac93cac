"""bench/PRUNING.md: the machine, the method, the goal check and the table of pruning recipes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class PruneRow:
    """One recipe's comparison with the fp32 original, or why there is none."""

    recipe: str
    who: str
    comparison: dict[str, Any] | None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


COLUMNS = (
    "recipe", "by", "time (s)", "p50 b1 (ms)", "speedup b1", "p50 b8 (ms)", "speedup b8", "parameters",
    "non-zero", "size (KB)", "size ratio", "gzip (KB)", "gzip ratio", "top-1", "drop (points)", "cosine",
)  # fmt: skip


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _side(side: dict[str, Any]) -> list[str]:
    """Parameters, non-zero parameters, size and gzip size of one side."""
    return [
        f"{side['parameters']:,}",
        f"{side['nonzero_parameters']:,}",
        f"{side['size_bytes'] / 1024:.0f}",
    ]


def _top1(side: dict[str, Any]) -> str:
    value = side["accuracy"].get("top1")
    return "n/a" if value is None else f"{value:.4f}"


def table(rows: list[PruneRow]) -> list[str]:
    """The markdown table: the fp32 original first, then every recipe."""
    lines = [_line(list(COLUMNS)), _line(["---", "---", *["---:"] * (len(COLUMNS) - 2)])]
    measured = [row.comparison for row in rows if row.comparison]
    if measured:
        base = measured[0]["baseline"]
        # Each pair times the original afresh; the median of those p50s is the steadiest figure.
        p50 = {
            b: statistics.median(c["baseline"]["latency_ms"][b]["p50"] for c in measured) for b in ("1", "8")
        }
        lines.append(_line([
            "fp32 original", "", "", f"{p50['1']:.3f}", "1.00", f"{p50['8']:.3f}", "1.00", *_side(base),
            "1.00", f"{base['compressed_size_bytes'] / 1024:.0f}", "1.00", _top1(base), "", "",
        ]))  # fmt: skip
    for row in rows:
        if row.comparison is None:
            lines.append(_line([row.recipe, row.who, f"failed: {row.error}", *[""] * (len(COLUMNS) - 3)]))
            continue
        cand, delta = row.comparison["candidate"], row.comparison["delta"]
        drop = delta["accuracy_drop"]
        lines.append(_line([
            row.recipe, row.who, f"{row.seconds:.1f}",
            f"{cand['latency_ms']['1']['p50']:.3f}", f"{delta['speedup']['1']:.2f}",
            f"{cand['latency_ms']['8']['p50']:.3f}", f"{delta['speedup']['8']:.2f}",
            *_side(cand), f"{delta['size_ratio']:.2f}",
            f"{cand['compressed_size_bytes'] / 1024:.0f}", f"{delta['compressed_size_ratio']:.2f}",
            _top1(cand), "n/a" if drop is None else f"{100 * drop:+.2f}",
            f"{delta['fidelity']['cosine']:.5f}",
        ]))  # fmt: skip
    return lines


def notes(rows: list[PruneRow]) -> list[str]:
    """Every warning a recipe or its verdict gave, once each."""
    lines: list[str] = []
    for row in rows:
        said = [*row.warnings, *((row.comparison or {}).get("verdict", {}).get("warnings", []))]
        lines.extend(f"- {row.recipe}: {text}" for text in dict.fromkeys(said))
    return lines


def render(
    *,
    host: dict[str, Any],
    settings: dict[str, Any],
    reference: dict[str, Any],
    goals: list[str],
    rows: list[PruneRow],
) -> str:
    """The whole PRUNING.md."""
    isa = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in host["isa"].items())
    versions = ", ".join(f"{name} {version}" for name, version in host["versions"].items())
    budget = settings["budget"]
    out = [
        "# ModelPress pruning benchmark",
        "",
        f"Written by `python -m bench.pruning` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in"
        f" {settings['total_s']:.0f} s; re-run it to refresh.",
        "",
        "## Machine",
        "",
        f"- CPU: {host['cpu']}, {host['cores']} cores available",
        f"- ISA: {isa}",
        f"- Python {host['python']}; {versions}",
        f"- onnxruntime CPUExecutionProvider, intra-op threads: {settings['threads']}",
        f"- load average at start {host['load']:.2f}, at end {settings['load_end']:.2f} (runs are"
        " interleaved, so other work on the machine slows both sides of a pair alike)",
        "",
        "## Method",
        "",
        f"Reference: {reference['what']}, trained by the harness on scikit-learn's digits upsampled to 16x16"
        f" (1437 train / 360 test images) in {reference['train_s']:.0f} s, torch top-1"
        f" {reference['torch_accuracy']:.4f}, exported to ONNX. Every recipe's candidate is compared with"
        " the fp32 ONNX original by `engine.evaluate.compare_models`, as a job's evaluation does: both models"
        f" interleaved run by run after {settings['warmup_runs']} warm-up runs, {settings['budget_s']:g} s of"
        " timed runs per batch size, one intra-op thread; latency is the p50, speedup is original p50 /"
        " candidate p50 from the same pair. Size is the ONNX file; gzip is that file gzip-compressed"
        " (level 6), where zeroed weights show their storage win. Top-1 is on the 360 test images; drop is"
        " in points.",
        "",
        "Fine-tuning budget for every recipe that trains: the 1437 labelled training images,"
        f" {budget.epochs} epochs, Adam, learning rate {budget.learning_rate:g} with cosine decay, batch"
        f" {budget.batch_size}, seed 0, one torch thread. ModelPress's objective is its default:"
        " cross-entropy mixed half and half with distillation from the original model's softened outputs"
        " (temperature 4); the labels-only row sets `distillation` to 0; the hand recipe uses cross-entropy,"
        " as Torch-Pruning's examples do. quantize.static calibrates on the training images (its defaults:"
        " MinMax, per-channel, uint8 activations x int8 weights). A chained recipe (`->`) runs the second"
        " technique on the first one's output, as the steps of one job do. *Time* is the recipe's own wall"
        " time (pruning, fine-tuning, export, quantization; for a chained recipe its last step only),"
        " without the comparison.",
        "",
        "The hand recipe is Torch-Pruning 1.6 called directly on the same trained torch model:"
        " `MetaPruner` with `MagnitudeImportance(p=1)` (L1), 50% of each layer's channels, `round_to=8`,"
        " the classifier ignored, then the same fine-tuning loop and `torch.onnx.export`.",
        "",
        "## Goal check",
        "",
        *goals,
        "",
        "## Results",
        "",
        *table(rows),
        "",
    ]
    said = notes(rows)
    if said:
        out += ["Warnings reported:", "", *said, ""]
    return "\n".join(out)
