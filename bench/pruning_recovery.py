"""`python -m bench.pruning_recovery`: accuracy recovery after structured pruning on a BN-folded CNN.

ModelPress's prune.structured (default fine-tuning) against hand-written Torch-Pruning on the same
folded graph and on the unfolded model, at 50% channels with 3 epochs and 30% with 1 epoch; same
training split, same epochs, learning rate and batch size, and the same per-layer channel counts
(bench/recovery_hand.py) on both sides; every recipe over several fine-tuning seeds. Writes RECOVERY.md.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from bench.machine import machine
from bench.pruning_setup import export, one_thread
from bench.recovery_hand import torch_pruning
from bench.recovery_report import render
from bench.recovery_setup import RecoveryReference, build
from bench.torch_pruning_recipe import Budget, finetune

HERE = Path(__file__).resolve().parent
ROUND_TO = 8
# (channels removed, fine-tuning epochs)
SETTINGS = ((0.5, 3), (0.3, 1))
TIMED_RUNS = 200
# One test image is 0.28 points: a single fine-tuning run cannot tell recipes a point apart.
SEEDS = 5


@dataclass
class Row:
    """One recipe at one setting: its accuracy, its exported graph and its latency."""

    recipe: str
    sparsity: float
    epochs: int
    top1: float
    drop: float
    seconds: float
    nodes: int
    parameters: int
    channels: list[int] = field(default_factory=list)
    drops: list[float] = field(default_factory=list)
    latency_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


def onnx_top1(path: Path, test: tuple[np.ndarray, np.ndarray]) -> float:
    """Test-split accuracy of an ONNX model on onnxruntime."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float((session.run(None, {"x": test[0]})[0].argmax(1) == test[1]).mean())


def graph_facts(path: Path) -> tuple[int, int, list[int]]:
    """Node count, float parameters and each convolution's output channels of an ONNX file."""
    model = onnx.load(str(path))
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer if init.data_type == 1)
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    widths = [shapes[node.input[1]][0] for node in model.graph.node if node.op_type == "Conv"]
    return len(model.graph.node), params, widths


def hand(
    reference: RecoveryReference, source: nn.Module, sparsity: float, budget: Budget, out: Path
) -> list[str]:
    """Torch-Pruning, then the hand fine-tuning loop (Adam, cosine decay, cross-entropy), then export."""
    model = torch_pruning(source, reference.example, sparsity, ROUND_TO)
    threads = one_thread()
    try:
        losses = finetune(model, reference.train_npz, budget)
    finally:
        torch.set_num_threads(threads)
    export(model.eval(), reference.example, out)
    return [f"loss per epoch {', '.join(f'{loss:.3f}' for loss in losses)}"]


def modelpress(
    reference: RecoveryReference, sparsity: float, budget: Budget, out: Path, **options: Any
) -> list[str]:
    """prune.structured as a job step runs it, with the same fine-tuning budget."""
    from engine.contract import StepContext
    from engine.techniques.prune import structured as prune_structured
    from service.catalog.prune import StructuredPruneParams

    tuning = {"dataset_id": "train", "epochs": budget.epochs, "learning_rate": budget.learning_rate}
    tuning.update(batch_size=budget.batch_size, seed=budget.seed, **options.pop("finetune", {}))
    params = StructuredPruneParams.model_validate(
        {"sparsity": sparsity, "round_to": ROUND_TO, "finetune": tuning, **options}
    )
    ctx = StepContext(workdir=out.parent, datasets={"train": reference.train_npz})
    outcome = prune_structured.run(reference.onnx_path, out, params, ctx)
    recovery = outcome.metrics.get("recovery", {})
    epochs = [
        f"{e['epoch']}: {e['validation'].get('top1', 0):.3f}"
        for stage in recovery.get("stages", [])
        for e in stage["finetune"]["epochs"]
        if "validation" in e
    ]
    before = (recovery.get("after_pruning") or {}).get("top1")
    return [f"held-out top-1 after pruning {before}, per epoch {'; '.join(epochs)}"]


def latency(path: Path, example: np.ndarray) -> float:
    """Median ms of one run at batch 8, one thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(20):
        session.run(None, {"x": example})
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        session.run(None, {"x": example})
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def recipes(
    reference: RecoveryReference, sparsity: float, budget: Budget
) -> dict[str, Callable[[Path], list[str]]]:
    """Every recipe at one setting, by name."""
    return {
        "ModelPress prune.structured (defaults)": lambda out: modelpress(reference, sparsity, budget, out),
        "ModelPress, l1 importance (the default before taylor)": lambda out: modelpress(
            reference, sparsity, budget, out, importance="l1"
        ),
        "ModelPress, sensitivity allocation (l1 ranking, what auto gives)": lambda out: modelpress(
            reference, sparsity, budget, out, allocation="sensitivity"
        ),
        "ModelPress, sensitivity allocation with taylor ranking": lambda out: modelpress(
            reference, sparsity, budget, out, allocation="sensitivity", importance="taylor"
        ),
        "ModelPress, iterative (one step per epoch)": lambda out: modelpress(
            reference, sparsity, budget, out, iterations=budget.epochs
        ),
        "ModelPress, old recovery (l1, no norms, T=4, no held-out split)": lambda out: modelpress(
            reference,
            sparsity,
            budget,
            out,
            renormalize=False,
            importance="l1",
            finetune={"temperature": 4.0, "validation_fraction": 0.0, "warmup_fraction": 0.0},
        ),  # fmt: skip
        "Torch-Pruning (hand), same folded graph": lambda out: hand(
            reference, reference.folded, sparsity, budget, out
        ),
        "Torch-Pruning (hand), unfolded model with BN": lambda out: hand(
            reference, reference.model, sparsity, budget, out
        ),
    }


def measure(
    reference: RecoveryReference, name: str, setting: tuple[float, int], seeds: int, workdir: Path
) -> Row:
    """One recipe at one setting, once per fine-tuning seed: mean accuracy, graph and latency of seed 0."""
    sparsity, epochs = setting
    accuracies, seconds, notes, outputs = [], [], [], []
    for seed in range(seeds):
        out = workdir / f"{re.sub('[^a-z0-9]+', '-', name.lower()).strip('-')}-{sparsity:.0%}-{seed}.onnx"
        began = time.perf_counter()
        told = recipes(reference, sparsity, Budget(epochs, 1e-3, 32, seed))[name](out)
        seconds.append(time.perf_counter() - began)
        accuracies.append(onnx_top1(out, reference.test))
        notes, outputs = notes or told, [*outputs, out]
    drops = [100 * (reference.accuracy - accuracy) for accuracy in accuracies]
    first = outputs[0]
    nodes, parameters, channels = graph_facts(first)
    row = Row(
        name, sparsity, epochs, float(np.mean(accuracies)), float(np.mean(drops)), float(np.mean(seconds)),
        nodes, parameters, channels, drops=drops, notes=notes,
    )  # fmt: skip
    row.latency_ms = latency(first, reference.test[0][:8])
    return row


def main(argv: list[str] | None = None) -> int:
    """Build the folded CNN, run every recipe at both settings, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "recovery")
    parser.add_argument("--out", type=Path, default=HERE / "RECOVERY.md")
    parser.add_argument("--only", default="", help="run only recipes whose name contains this")
    parser.add_argument(
        "--seeds",
        type=lambda text: max(1, int(text)),
        default=SEEDS,
        help="fine-tuning seeds per recipe (0, 1, ...)",
    )
    args = parser.parse_args(argv)
    started, host = time.perf_counter(), machine()
    host["versions"]["torch-pruning"] = metadata.version("torch-pruning")
    reference = build(args.workdir)
    print(f"reference top-1 {reference.accuracy:.4f} ({reference.train_seconds:.0f} s)", flush=True)
    rows: list[Row] = []
    for setting in SETTINGS:
        for name in recipes(reference, setting[0], Budget(setting[1], 1e-3, 32)):
            if args.only not in name:
                continue
            row = measure(reference, name, setting, args.seeds, args.workdir)
            rows.append(row)
            print(
                f"{row.sparsity:.0%} {row.epochs}ep {name}: top-1 {row.top1:.4f} drop {row.drop:+.2f}"
                f" (per seed {', '.join(f'{drop:+.2f}' for drop in row.drops)}; {row.seconds:.0f} s)",
                flush=True,
            )
    settings = {
        "load_end": os.getloadavg()[0],
        "total_s": time.perf_counter() - started,
        "original_nodes": graph_facts(reference.onnx_path)[0],
        "seeds": args.seeds,
    }
    args.out.write_text(render(host, reference, rows, settings) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
