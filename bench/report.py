"""The markdown written to bench/RESULTS.md: machine, method, goals, findings and one table per model."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.headtohead import Duel


@dataclass
class Row:
    """One recipe's outcome on one model: the comparison object, or why there is none."""

    recipe: str
    who: str
    comparison: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    candidate: Path | None = None
    ablation: bool = False

    def speedup(self, batch: int) -> float:
        """fp32 p50 / candidate p50 at this batch size (0 when the recipe failed)."""
        return float(self.comparison["delta"]["speedup"][str(batch)]) if self.comparison else 0.0

    @property
    def top1(self) -> float:
        """Top-1 on the test split (0 when the recipe failed)."""
        return float(self.comparison["candidate"]["accuracy"]["top1"]) if self.comparison else 0.0

    @property
    def drop(self) -> float:
        """fp32 top-1 minus the candidate's (1 when the recipe failed)."""
        return float(self.comparison["delta"]["accuracy_drop"]) if self.comparison else 1.0

    @property
    def cosine(self) -> float:
        """Mean cosine of the candidate's logits to fp32's (0 when the recipe failed)."""
        return float(self.comparison["delta"]["fidelity"]["cosine"]) if self.comparison else 0.0


@dataclass
class ModelResult:
    """Every recipe measured on one reference model."""

    name: str
    what: str
    torch_accuracy: float
    train_seconds: float
    rows: list[Row]
    duels: list[Duel] = field(default_factory=list)
    onnx_path: Path | None = None


COLUMNS = (
    "recipe", "by", "p50 b1 (ms)", "speedup b1", "p50 b8 (ms)", "speedup b8", "size (KB)", "size ratio",
    "top-1", "drop (points)", "cosine",
)  # fmt: skip


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _top1(side: dict[str, Any]) -> str:
    value = side["accuracy"].get("top1")
    return "n/a" if value is None else f"{value:.4f}"


def _table(result: ModelResult) -> list[str]:
    measured = [row.comparison for row in result.rows if row.comparison]
    lines = [_line(list(COLUMNS)), _line(["---", "---", *["---:"] * (len(COLUMNS) - 2)])]
    if measured:
        base = measured[0]["baseline"]
        p50 = {
            b: statistics.median(c["baseline"]["latency_ms"][b]["p50"] for c in measured) for b in ("1", "8")
        }
        size = f"{base['size_bytes'] / 1024:.0f}"
        lines.append(_line(["fp32 (baseline)", "", f"{p50['1']:.3f}", "1.00", f"{p50['8']:.3f}", "1.00", size,
                            "1.00", _top1(base), "", ""]))  # fmt: skip
    for row in result.rows:
        if row.comparison is None:
            who = f"{row.who} (ablation)" if row.ablation else row.who
            lines.append(_line([row.recipe, who, f"failed: {row.error}", *[""] * (len(COLUMNS) - 3)]))
            continue
        cand, delta = row.comparison["candidate"], row.comparison["delta"]
        latency, speedup, drop = cand["latency_ms"], delta["speedup"], delta["accuracy_drop"]
        lines.append(
            _line(
                [
                    row.recipe,
                    f"{row.who} (ablation)" if row.ablation else row.who,
                    f"{latency['1']['p50']:.3f}",
                    f"{speedup['1']:.2f}",
                    f"{latency['8']['p50']:.3f}",
                    f"{speedup['8']:.2f}",
                    f"{cand['size_bytes'] / 1024:.0f}",
                    f"{delta['size_ratio']:.2f}",
                    _top1(cand),
                    "n/a" if drop is None else f"{100 * drop:+.2f}",
                    f"{delta['fidelity']['cosine']:.5f}",
                ]
            )  # fmt: skip
        )
    return lines


def _notes(result: ModelResult) -> list[str]:
    notes: list[str] = []
    for row in result.rows:
        said = [*row.warnings, *((row.comparison or {}).get("verdict", {}).get("warnings", []))]
        notes.extend(f"- {row.recipe}: {text}" for text in dict.fromkeys(said))
    return notes


def render(
    results: list[ModelResult],
    host: dict[str, Any],
    settings: dict[str, Any],
    goals: list[str],
    findings: list[str],
) -> str:
    """The whole RESULTS.md."""
    isa = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in host["isa"].items())
    versions = ", ".join(f"{name} {version}" for name, version in host["versions"].items())
    out = [
        "# ModelPress benchmark results",
        "",
        f"Written by `python -m bench.run` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; re-run it to refresh.",
        "",
        "## Machine",
        "",
        f"- CPU: {host['cpu']}, {host['cores']} cores available",
        f"- ISA: {isa}",
        f"- Python {host['python']}; {versions}",
        f"- onnxruntime CPUExecutionProvider, intra-op threads: {settings['threads']}",
        f"- load average at start {host['load']:.2f}, at end {settings['load_end']:.2f} (other work on the "
        "machine slows both sides of a pair alike, since runs are interleaved)",
        "",
        "## Method",
        "",
        "Each reference model is trained by the harness on scikit-learn's digits (1437 train / 360 test"
        " images) and exported to ONNX. Every recipe's candidate is compared with the fp32 model by"
        " `engine.evaluate.compare_models`: both models on the same machine, interleaved run by run after"
        f" {settings['warmup_runs']} warm-up runs, {settings['budget_s']:g} s of timed runs per batch size."
        " Latency is the p50 of those runs; speedup is fp32 p50 / candidate p50 from the same interleaved"
        " pair (the fp32 row shows the median of its p50 over all pairs). Size is the ONNX file. Top-1 is on"
        " the 360 test images; drop is in points (fp32 minus candidate); cosine is the mean cosine"
        " similarity of the candidate's logits to fp32's. Static recipes calibrate on training images minus a"
        " labelled held-back slice, on which quantize.auto scores its trials; the test split stays unseen."
        " The default is one intra-op thread (`--threads N` to change): with more, on a shared two-core"
        " machine, each parallel section waits for whichever core another process holds, and the idle"
        " session's spinning thread pool slows the session being timed, which skews the ratios.",
        "",
        "*Hand* recipes call onnxruntime.quantization directly with its defaults, as a user would;"
        " *ModelPress* recipes call the technique's `run` with default parameters; *ablation* rows are"
        " ModelPress with one default switched off, to show what the default is worth (they never count as"
        " ModelPress's best). Single interleaved pairs swing by tens of percent on this shared machine, so"
        " every speed a goal depends on is re-timed head to head (bench/headtohead.py): the two models and a"
        " second session of the first run in rotating order, round after round; a repeat's figure is the"
        " median of the per-round time ratios, the goal uses the median of three repeats, and the first"
        " model against its second session (A/A) gives the noise floor below which a difference is not"
        " called real.",
        "",
    ]
    if goals:
        out += ["## Goals", "", *goals]
    out += findings
    for result in results:
        out += [
            f"## {result.name}: {result.what}",
            "",
            f"Trained in {result.train_seconds:.1f} s; torch top-1 {result.torch_accuracy:.4f}.",
            "",
            *_table(result),
            "",
        ]
        notes = _notes(result)
        if notes:
            out += ["Warnings reported:", "", *notes, ""]
    return "\n".join(out)
