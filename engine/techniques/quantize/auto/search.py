"""quantize.auto's search: how many of the most sensitive nodes to keep in float next, and which trial wins.

Trial 0 quantizes everything. When it misses the budget, the search keeps the k most sensitive nodes in
float for k = 1, 2, 4, ... until a trial meets the budget, then bisects between the largest failing
and the smallest passing k, since fewer float nodes usually means a faster model. Accuracy is roughly
monotone in k, so a budget is met (or shown out of reach) in about 2·log2(nodes) trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Trial:
    """One measured candidate."""

    trial: int
    excluded_nodes: list[str]
    accuracy: float
    accuracy_drop: float
    within_budget: bool
    latency_ms: float
    speedup: float
    size_bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    # What was quantized besides the exclusions: "static", "static, int8-kernel ops only", "dynamic".
    config: str = "static"
    latency_percentiles_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The row of the trial table in the step's metrics."""
        return {
            "trial": self.trial,
            "config": self.config,
            "excluded_nodes": list(self.excluded_nodes),
            "accuracy": self.accuracy,
            "accuracy_drop": self.accuracy_drop,
            "within_budget": self.within_budget,
            "latency_ms": self.latency_ms,
            "latency_percentiles_ms": dict(self.latency_percentiles_ms),
            "speedup": self.speedup,
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
        }


class ExclusionSearch:
    """Chooses the next number of top-ranked nodes to keep in float, from the results so far."""

    def __init__(self, candidates: int) -> None:
        # Keeping every quantized node in float would leave nothing quantized.
        self.limit = max(candidates - 1, 0)
        self.failing = 0
        self.passing: int | None = None

    def record(self, excluded: int, within: bool) -> None:
        """Note whether keeping `excluded` nodes in float met the budget."""
        if within:
            self.passing = excluded if self.passing is None else min(self.passing, excluded)
        else:
            self.failing = max(self.failing, excluded)

    def next_count(self) -> int | None:
        """How many nodes the next trial keeps in float, or None when the search is over."""
        if self.passing is None:
            if self.failing >= self.limit:
                return None
            return min(max(1, 2 * self.failing), self.limit)
        if self.passing - self.failing > 1:
            return (self.failing + self.passing) // 2
        return None


def choose(trials: list[Trial]) -> Trial:
    """The fastest trial within budget; without one, the trial with the least drop (then the fastest)."""
    within = [trial for trial in trials if trial.within_budget]
    if within:
        return max(within, key=lambda trial: (trial.speedup, -len(trial.excluded_nodes)))
    return min(trials, key=lambda trial: (trial.accuracy_drop, -trial.speedup))
