"""Timing an exported torch program against the fp32 torch module, with onnxruntime for reference."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluate.benchmark import MIN_ROUNDS, keep_timing, percentiles
from engine.evaluate.fidelity import fidelity

WARMUP_RUNS = 3
# Below this ratio a difference is within run-to-run noise on a shared CPU (as in the verdict).
FASTER = 1.05
RUNNERS = ("torch_fp32", "program", "onnxruntime")


@dataclass
class ProgramTiming:
    """p50/p95/p99 per batch size for each runner, and the program's outputs against fp32 torch."""

    latency_ms: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    # Batch sizes whose inputs the program refused (torch.export specialized a dim at the example).
    refused: dict[str, str] = field(default_factory=dict)

    def speedup(self, over: str) -> dict[str, float]:
        """The program's p50 speedup over another runner, per batch size."""
        return {batch: runs[over]["p50"] / runs["program"]["p50"] for batch, runs in self.latency_ms.items()}

    def as_metrics(self) -> dict[str, Any]:
        """The step metrics: latencies, speedups and fidelity."""
        return {
            "latency_ms": self.latency_ms,
            "speedup_vs_torch_fp32": self.speedup("torch_fp32"),
            "speedup_vs_onnxruntime": self.speedup("onnxruntime"),
            "fidelity_vs_torch_fp32": self.fidelity,
            "refused_batch_sizes": sorted(int(batch) for batch in self.refused),
        }

    def warnings(self, weights: str) -> list[str]:
        """What the figures say a torch deployment loses or gains."""
        notes = []
        slow = {batch: value for batch, value in self.speedup("torch_fp32").items() if value < FASTER}
        if slow and weights == "int8":
            shown = ", ".join(f"batch {batch}: {value:.2f}x" for batch, value in slow.items())
            notes.append(
                f"torchao int8 is not faster than the fp32 torch module on this CPU ({shown}); export with"
                ' weights "fp32", or deploy the ONNX model with quantize.dynamic on onnxruntime'
            )
        behind = {
            batch: 1 / value for batch, value in self.speedup("onnxruntime").items() if value < 1 / FASTER
        }
        if behind:
            shown = ", ".join(f"batch {batch}: {value:.2f}x" for batch, value in behind.items())
            notes.append(f"onnxruntime runs the ONNX model faster than this torch program ({shown})")
        if self.refused:
            batches, reason = ", ".join(self.refused), next(iter(self.refused.values()))
            notes.append(
                f"the program refuses inputs at batch {batches} ({reason}): torch.export fixed a dim at"
                f" the size it traced with; timed at batch {', '.join(self.latency_ms)} instead"
            )
        return notes


def time_program(
    module: Any,
    program: Any,
    onnx_path: Path,
    *,
    batch_sizes: Sequence[int],
    examples: Sequence[Any],
    budget_s: float,
    threads: int,
) -> ProgramTiming:
    """Warm up, then alternate the three runners (order rotating each round) at each batch size."""
    import torch

    from engine.bridge.equivalence import random_inputs
    from engine.bridge.export import example_inputs
    from engine.evaluate.sessions import make_session

    session = make_session(onnx_path, threads)
    names = [spec.name for spec in module.inputs]
    timing = ProgramTiming()
    tries: dict[str, list[Any]] = {}
    for size in batch_sizes:
        inputs = random_inputs(example_inputs(module, batch=size), seed=size)
        reason = _refusal(program, inputs)
        if reason is None:
            tries[str(size)] = inputs
        else:
            timing.refused[str(size)] = reason
    if not tries:  # every batch size was refused: time the inputs the program was traced with
        tries = {_batch_of(examples): list(examples)}
    for batch, inputs in tries.items():
        feeds = {name: x.numpy() for name, x in zip(names, inputs, strict=True)}

        def in_torch(runner: Callable[..., Any], inputs: list[Any] = inputs) -> Callable[[], object]:
            def call() -> object:
                with torch.inference_mode():
                    return runner(*inputs)

            return call

        def in_onnxruntime(feeds: dict[str, Any] = feeds) -> object:
            return session.run(None, feeds)

        runners = [in_torch(module), in_torch(program), in_onnxruntime]
        timing.latency_ms[batch] = {
            name: percentiles(ms) for name, ms in zip(RUNNERS, _interleaved(runners, budget_s), strict=True)
        }
    with torch.inference_mode():
        reference, candidate = (_first(runner(*inputs)) for runner in (module, program))
    timing.fidelity = fidelity(reference.float().numpy(), candidate.float().numpy())
    return timing


def _refusal(program: Any, inputs: Sequence[Any]) -> str | None:
    """Why the program will not run these inputs (its shape guards), or None when it does."""
    import torch

    try:
        with torch.inference_mode():
            program(*inputs)
    except (AssertionError, RuntimeError) as error:
        text = str(error)
        # torch.export's input checks: "Guard failed: ..." (2.9+) or "Expected input at ..." (earlier).
        if "Guard failed" in text or "Expected input at" in text:
            return text.splitlines()[0][:200]
        raise
    return None


def _batch_of(examples: Sequence[Any]) -> str:
    first = examples[0]
    return str(int(first.shape[0])) if first.dim() else "1"


def _first(result: Any) -> Any:
    return result if not isinstance(result, tuple | list) else result[0]


def _interleaved(runners: Sequence[Callable[[], object]], budget_s: float) -> list[np.ndarray]:
    for _ in range(WARMUP_RUNS):
        for runner in runners:
            runner()
    times: list[list[float]] = [[] for _ in runners]
    start = time.perf_counter()
    rounds = 0
    while rounds < MIN_ROUNDS or keep_timing(rounds, time.perf_counter() - start, budget_s):
        shift = rounds % len(runners)
        for which in [*range(shift, len(runners)), *range(shift)]:
            before = time.perf_counter()
            runners[which]()
            times[which].append((time.perf_counter() - before) * 1000.0)
        rounds += 1
    return [np.array(ms) for ms in times]
