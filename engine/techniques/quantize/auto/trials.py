"""What quantize.auto records of a candidate: its measurement, and the trial that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """A candidate's score, its loss against the original's, and its speed and size."""

    accuracy: float
    accuracy_drop: float
    within_budget: bool
    latency_ms: float
    speedup: float
    size_bytes: int
    latency_percentiles_ms: dict[str, float] = field(default_factory=dict)
    # The drop plus 1.645 paired standard errors over the evaluation samples (one-sided 95%).
    accuracy_drop_bound: float | None = None


# Keyword-only: the measurement's last field has a default, the trial's own fields follow it.
@dataclass(frozen=True, kw_only=True)
class Trial(Measurement):
    """One measured candidate: the measurement plus which nodes stayed in float and what it cost."""

    trial: int
    excluded_nodes: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    # What was quantized besides the exclusions: "static", "static, int8-kernel ops only", "dynamic".
    config: str = "static"

    def as_dict(self) -> dict[str, Any]:
        """The row of the trial table in the step's metrics."""
        measured = {item.name: getattr(self, item.name) for item in fields(Measurement)}
        measured["latency_percentiles_ms"] = dict(self.latency_percentiles_ms)
        return {
            "trial": self.trial,
            "config": self.config,
            "excluded_nodes": list(self.excluded_nodes),
            **measured,
            "seconds": self.seconds,
        }
