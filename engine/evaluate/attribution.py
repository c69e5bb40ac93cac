"""Per-step attribution: every step's output measured alike, so a chain shows what each step added or cost."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluate import accuracy as acc
from engine.evaluate.benchmark import MIN_ROUNDS
from engine.evaluate.fidelity import fidelity
from engine.evaluate.inputs import EvalData, take
from engine.evaluate.sessions import CHUNK, feeds_for, first_output, make_session

# Below these a step's added loss is rounding, not a cause worth naming.
MIN_DROP = 1e-4
MIN_COSINE_LOSS = 1e-4


def measure_steps(
    baseline_path: Path,
    steps: Sequence[Mapping[str, Any]],
    data: EvalData,
    *,
    batches: Sequence[int],
    fixed: int | None,
    metric: str | None,
    threads: int,
    budget_s: float,
    warmup_runs: int,
) -> list[dict[str, Any]]:
    """Size, p50 latency per batch, score and fidelity of the original and of every step's output.

    All models run round-robin in one loop per batch size, so the per-step speedups share conditions.
    """
    paths = [baseline_path, *(Path(step["path"]) for step in steps)]
    sessions = [make_session(path, threads) for path in paths]
    outputs = [first_output(session, data.arrays, fixed or CHUNK) for session in sessions]
    latency: list[dict[str, float]] = [{} for _ in paths]
    for batch in batches:
        runs = [partial(s.run, None, feeds_for(s, take(data.arrays, 0, batch))) for s in sessions]
        for which, ms in enumerate(_round_robin(runs, warmup_runs=warmup_runs, budget_s=budget_s)):
            latency[which][str(batch)] = float(np.percentile(ms, 50))
    points = []
    for which, path in enumerate(paths):
        score = acc.score(metric, outputs[which], data.labels) if metric and data.labels is not None else None
        points.append(
            {
                "size_bytes": path.stat().st_size,
                "latency_ms": latency[which],
                "accuracy": {metric: score} if metric and score is not None else {},
                "fidelity": fidelity(outputs[0], outputs[which]),
            }
        )
    return [
        {
            "index": step["index"],
            "technique": step["technique"],
            **point,
            "added": _added(before, point, metric),
        }
        for step, before, point in zip(steps, points[:-1], points[1:], strict=True)
    ]


def _added(before: Mapping[str, Any], after: Mapping[str, Any], metric: str | None) -> dict[str, Any]:
    """What one step changed against the model it was given."""
    drop = None
    if metric and metric in before["accuracy"] and metric in after["accuracy"]:
        drop = acc.accuracy_drop(metric, before["accuracy"][metric], after["accuracy"][metric])
    cosines = before["fidelity"].get("cosine"), after["fidelity"].get("cosine")
    return {
        "size_ratio": after["size_bytes"] / before["size_bytes"],
        "speedup": {
            batch: before["latency_ms"][batch] / ms for batch, ms in after["latency_ms"].items() if ms > 0
        },
        "accuracy_drop": drop,
        "cosine_loss": None if None in cosines else float(cosines[0]) - float(cosines[1]),
    }


def responsible_step(attribution: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The step that lost the most accuracy (or, without labels, the most cosine); None when none lost any."""
    with_drop = [step for step in attribution if step["added"]["accuracy_drop"] is not None]
    if with_drop:
        worst = max(with_drop, key=lambda step: step["added"]["accuracy_drop"])
        return worst if worst["added"]["accuracy_drop"] > MIN_DROP else None
    with_cosine = [step for step in attribution if step["added"]["cosine_loss"] is not None]
    if not with_cosine:
        return None
    worst = max(with_cosine, key=lambda step: step["added"]["cosine_loss"])
    return worst if worst["added"]["cosine_loss"] > MIN_COSINE_LOSS else None


def _round_robin(
    runners: Sequence[Callable[[], object]], *, warmup_runs: int, budget_s: float
) -> list[np.ndarray]:
    """Per-run latencies of each runner, rotating who goes first each round, until the budget is spent."""
    for _ in range(warmup_runs):
        for runner in runners:
            runner()
    times: list[list[float]] = [[] for _ in runners]
    start = time.perf_counter()
    rounds = 0
    while rounds < MIN_ROUNDS or time.perf_counter() - start < budget_s:
        for offset in range(len(runners)):
            which = (rounds + offset) % len(runners)
            before = time.perf_counter()
            runners[which]()
            times[which].append((time.perf_counter() - before) * 1000.0)
        rounds += 1
    return [np.array(ms) for ms in times]
