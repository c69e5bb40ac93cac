"""Interleaved latency measurement of two models on the same inputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_ROUNDS = 3


@dataclass(frozen=True)
class PairTiming:
    """Per-run latencies in milliseconds, one entry per round for each model."""

    baseline_ms: np.ndarray
    candidate_ms: np.ndarray

    @property
    def rounds(self) -> int:
        """How many timed runs each model had."""
        return len(self.baseline_ms)

    def of(self, which: int) -> np.ndarray:
        """Latencies of the baseline (0) or of the candidate (1)."""
        return self.candidate_ms if which else self.baseline_ms


def timed_runs_ms(call: Callable[[], object], runs: int, *, warmup: int) -> list[float]:
    """Milliseconds of `runs` calls in a row, after `warmup` untimed ones (one model, no interleaving)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def keep_timing(rounds: int, elapsed_s: float, budget_s: float) -> bool:
    """Run until the budget is spent, and never report fewer than three runs."""
    return rounds < MIN_ROUNDS or elapsed_s < budget_s


def rotating_ms(runs: Sequence[Callable[[], object]], budget_s: float) -> list[list[float]]:
    """Milliseconds of each callable's runs, each once a round, until the budget is spent.

    The order rotates from round to round and runs backwards every other round, so no callable
    always goes first or always follows the same neighbour; entry i of every list is from round i.
    """
    times: list[list[float]] = [[] for _ in runs]
    start = time.perf_counter()
    while keep_timing(len(times[0]), time.perf_counter() - start, budget_s):
        rounds = len(times[0])
        order = [(rounds + offset) % len(runs) for offset in range(len(runs))]
        for which in order if rounds % 2 == 0 else reversed(order):
            before = time.perf_counter()
            runs[which]()
            times[which].append((time.perf_counter() - before) * 1000.0)
    return times


def time_pair(
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    *,
    warmup_runs: int,
    budget_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> PairTiming:
    """Warm both up, then alternate them (flipping who goes first each round) until the budget is spent."""
    for _ in range(warmup_runs):
        baseline()
        candidate()
    runners = (baseline, candidate)
    times: tuple[list[float], list[float]] = ([], [])
    start = clock()
    while keep_timing(len(times[0]), clock() - start, budget_s):
        order = (0, 1) if len(times[0]) % 2 == 0 else (1, 0)
        for which in order:
            before = clock()
            runners[which]()
            times[which].append((clock() - before) * 1000.0)
    return PairTiming(np.array(times[0]), np.array(times[1]))


def percentiles(latencies_ms: np.ndarray) -> dict[str, float]:
    """p50, p95 and p99 in milliseconds."""
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def throughput(latencies_ms: np.ndarray, batch: int) -> float:
    """Samples per second when batches run back to back: total samples over total time."""
    return float(batch * len(latencies_ms) / (np.sum(latencies_ms) / 1000.0))


def size_and_speed_ratios(
    baseline: dict[str, Any], candidate: dict[str, Any], batches: Iterable[str]
) -> dict[str, Any]:
    """The delta's first figures: size and compressed-size ratios, and p50 speedup per batch size."""
    return {
        "size_ratio": candidate["size_bytes"] / baseline["size_bytes"],
        "compressed_size_ratio": candidate["compressed_size_bytes"] / baseline["compressed_size_bytes"],
        "speedup": {
            batch: baseline["latency_ms"][batch]["p50"] / candidate["latency_ms"][batch]["p50"]
            for batch in batches
        },
    }
