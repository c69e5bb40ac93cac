"""Distillation bench: does a pruned student learn more from the teacher than from the labels alone?

Teacher: a residual CNN (32 channels) trained on scikit-learn's digits (8x8, 80/20 split). Student:
the teacher with 75% of its channels removed by prune.structured (l1 ranking), not fine-tuned.
The student is then trained by the `distill` technique as the step after pruning, with the same
epochs and data in every run: labels only (distillation 0), distillation at temperature 1, 2 and 4,
and label-free distillation (inputs only). Accuracy is top-1 on the held-out 20% (never trained on),
mean over 3 seeds. Then one training step's time through the bridge against the same architecture
written by hand in torch. Writes bench/DISTILL.md and bench/distill.json.

    nice -n 10 python -m bench.distill
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from bench.machine import machine
from engine.bridge import from_onnx
from engine.contract import JOB_MODEL, StepContext
from engine.techniques.prune import structured as prune_structured
from engine.techniques.train import distill
from service.catalog.distill import DistillParams
from service.catalog.prune import StructuredPruneParams
from tests import model_zoo

HERE = Path(__file__).parent
WIDTH, TEACHER_EPOCHS = 32, 60
SPARSITY = 0.75
EPOCHS, LEARNING_RATE = 8, 3e-3
SEEDS = (0, 1, 2)
RUNS: dict[str, dict[str, Any]] = {
    "labels only": {"distillation": 0.0},
    "distillation T=1": {"distillation": 0.5, "temperature": 1.0},
    "distillation T=2": {"distillation": 0.5, "temperature": 2.0},
    "distillation T=4": {"distillation": 0.5, "temperature": 4.0},
    "distillation T=1 + features": {"distillation": 0.5, "temperature": 1.0, "features": "relus"},
    "label-free, KL T=1": {"labels": False, "response_loss": "kl"},
    "label-free, auto (MSE on logits)": {"labels": False},
}
TIMING_BATCH, TIMING_STEPS, TIMING_ROUNDS = 64, 30, 5


class HandCNN(nn.Module):
    """The exported teacher's graph written by hand: batch norms folded into the convolutions."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.block = nn.Conv2d(width, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(width * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        y = torch.relu(y + self.block(y))
        return self.head(self.pool(y).flatten(1))


def train_teacher(seed: int = 0) -> nn.Module:
    """The teacher, trained as a model is before it reaches the service: longer than the student
    will be, with a cosine schedule and one-pixel random shifts (knowledge the labels alone lack)."""
    torch.manual_seed(seed)
    model = model_zoo.DigitsCNN(width=WIDTH)
    images, labels = model_zoo.digits("train")
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, TEACHER_EPOCHS)
    model.train()
    for _ in range(TEACHER_EPOCHS):
        for batch in torch.randperm(len(x)).split(64):
            shifts = tuple(int(v) for v in torch.randint(-1, 2, (2,)))
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(torch.roll(x[batch], shifts, dims=(2, 3))), y[batch]).backward()
            optimizer.step()
        schedule.step()
    return model.eval()


def feature_pairs(teacher: Path, student: Path) -> list[dict[str, Any]]:
    """The stem's and the block's ReLU outputs of teacher and student, matched in graph order.

    The student's re-export renames its tensors, so the pairs are found by position, not by name.
    """

    def relus(path: Path) -> list[str]:
        return [node.output[0] for node in onnx.load(str(path)).graph.node if node.op_type == "Relu"]

    return [
        {"teacher": theirs, "student": mine, "weight": 1.0}
        for theirs, mine in zip(relus(teacher)[:2], relus(student)[:2], strict=True)
    ]


def held_out_accuracy(path: Path) -> float:
    """Top-1 on the digits test split through onnxruntime."""
    images, labels = model_zoo.digits("test")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"x": images})
    return float((np.asarray(logits).argmax(1) == labels).mean())


def step_seconds(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Median seconds of one Adam training step (forward, cross-entropy, backward, update)."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    times = []
    for _ in range(TIMING_STEPS):
        started = time.perf_counter()
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timing(teacher_onnx: Path) -> dict[str, float]:
    """One training step's time: the bridged teacher against HandCNN, rounds interleaved."""
    images, labels = model_zoo.digits("train")
    x, y = torch.from_numpy(images[:TIMING_BATCH]), torch.from_numpy(labels[:TIMING_BATCH])
    bridged, hand = from_onnx(teacher_onnx), HandCNN()
    bridge_times, hand_times = [], []
    for _ in range(TIMING_ROUNDS):
        bridge_times.append(step_seconds(bridged, x, y))
        hand_times.append(step_seconds(hand, x, y))
    bridge_s, hand_s = statistics.median(bridge_times), statistics.median(hand_times)
    return {"bridge_ms": bridge_s * 1e3, "hand_ms": hand_s * 1e3, "ratio": bridge_s / hand_s}


def main() -> None:
    """Train the teacher, prune the student, run every configuration over the seeds, write the results."""
    torch.set_num_threads(1)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    teacher = train_teacher()
    teacher_onnx = model_zoo.export_onnx(teacher, work / "teacher.onnx")
    student_onnx = work / "student.onnx"
    pruning = StructuredPruneParams(sparsity=SPARSITY, round_to=1, importance="l1")
    pruned = prune_structured.run(teacher_onnx, student_onnx, pruning, StepContext(workdir=work)).metrics
    images, labels = model_zoo.digits("train")
    np.savez(work / "labelled.npz", x=images, labels=labels)
    np.savez(work / "inputs.npz", x=images)
    results: dict[str, list[float]] = {name: [] for name in RUNS}
    for seed in SEEDS:
        for name, config in RUNS.items():
            data = work / ("labelled.npz" if config.get("labels", True) else "inputs.npz")
            params = {k: v for k, v in config.items() if k != "labels"}
            if params.get("features") == "relus":
                params["features"] = feature_pairs(teacher_onnx, student_onnx)
            validated = DistillParams.model_validate(
                {"dataset_id": "d", "epochs": EPOCHS, "learning_rate": LEARNING_RATE, "seed": seed, **params}
            )
            ctx = StepContext(workdir=work, datasets={"d": data}, models={JOB_MODEL: teacher_onnx})
            out = work / f"out-{seed}.onnx"
            distill.run(student_onnx, out, validated, ctx)
            results[name].append(held_out_accuracy(out))
            print(f"seed {seed} {name}: {results[name][-1]:.4f}", flush=True)
    speed = timing(teacher_onnx)
    report = {
        "machine": machine(),
        "teacher_top1": held_out_accuracy(teacher_onnx),
        "pruned_top1": held_out_accuracy(student_onnx),
        "parameters": {
            "teacher": pruned["parameters_before"],
            "student": pruned["parameters_after"],
        },
        "runs": {
            name: {"seeds": values, "mean": statistics.mean(values)} for name, values in results.items()
        },
        "step_time": speed,
        "seconds": round(time.monotonic() - started, 1),
    }
    (HERE / "distill.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "DISTILL.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The results file: set-up, accuracy table, the goals checked, timing, machine."""
    runs = report["runs"]
    labels_only = runs["labels only"]["mean"]
    best_kd = max((name for name in runs if name.startswith("distillation")), key=lambda n: runs[n]["mean"])
    default_kd = runs["distillation T=1"]["mean"]
    label_free = runs["label-free, KL T=1"]["mean"]
    speed, info = report["step_time"], report["machine"]
    lines = [
        "# Distillation bench",
        "",
        "`nice -n 10 python -m bench.distill` (bench/distill.py). Data: scikit-learn's digits (8x8), "
        "first 80% for training (the technique holds out 10% of it to pick the best epoch), last 20% "
        "held out for every figure below. Teacher: residual CNN, "
        f"{WIDTH} channels, trained {TEACHER_EPOCHS} epochs (Adam, cosine schedule, random one-pixel "
        "shifts). Student: the teacher with "
        f"{SPARSITY:.0%} of its channels removed by prune.structured (l1), then trained by `distill` as "
        f"the step after pruning: {EPOCHS} epochs, Adam {LEARNING_RATE:g} with warm-up and cosine decay, "
        "batch 32, the same data and epochs in every run. Mean over seeds "
        f"{', '.join(map(str, SEEDS))}.",
        "",
        f"- Teacher top-1: {report['teacher_top1']:.4f} ({report['parameters']['teacher']} parameters)",
        f"- Student right after pruning: {report['pruned_top1']:.4f} "
        f"({report['parameters']['student']} parameters)",
        "",
        "| run | " + " | ".join(f"seed {s}" for s in SEEDS) + " | mean |",
        "|---|" + "---|" * (len(SEEDS) + 1),
    ]
    for name, run in runs.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{v:.4f}" for v in run["seeds"]) + f" | {run['mean']:.4f} |"
        )
    gain = (default_kd - labels_only) * 100
    best_gain = (runs[best_kd]["mean"] - labels_only) * 100
    share = label_free / default_kd
    lines += [
        "",
        "## Goals",
        "",
        f"- Distillation vs labels only (goal >= +1 point): best distillation run ({best_kd}) "
        f"{best_gain:+.2f} points: {'met' if best_gain >= 1 else 'NOT met'}; response distillation alone "
        f"(default T=1, mix 0.5): {gain:+.2f} points. The feature run matches the stem's and the block's "
        "ReLU outputs through learned 1x1 adapters (the student has a quarter of the channels).",
        f"- Label-free (KL, T=1) vs labelled distillation (T=1): {share:.1%} of its accuracy (goal >= 95%): "
        f"{'met' if share >= 0.95 else 'NOT met'}; label-free with the default loss (MSE on logits): "
        f"{runs['label-free, auto (MSE on logits)']['mean'] / default_kd:.1%}.",
        "- Temperature: "
        + ", ".join(f"T={t} {runs[f'distillation T={t}']['mean']:.4f}" for t in (1, 2, 4))
        + ".",
        f"- One training step (batch {TIMING_BATCH}, forward + backward + Adam, median of "
        f"{TIMING_ROUNDS} x {TIMING_STEPS} steps, one thread): bridge {speed['bridge_ms']:.3f} ms, the same "
        f"architecture by hand in torch {speed['hand_ms']:.3f} ms: {speed['ratio']:.2f}x (goal <= 1.5x): "
        f"{'met' if speed['ratio'] <= 1.5 else 'NOT met'}.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores visible, load {info['load']:.2f} at the end "
        "(shared machine: timings are ratios from one run)",
        "- Versions: "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f", python {info['python']}",
        f"- Bench wall time: {report['seconds']} s",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
