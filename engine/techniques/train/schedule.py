"""How far a training run has got, and the learning rate there: linear warm-up, then cosine decay.

The run's progress is the larger of its share of steps and its share of the time budget, so a run
bounded by seconds follows the same schedule as one bounded by epochs and ends at the bottom of it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

# The decay ends at this share of the peak: the last steps still move the weights a little.
FLOOR = 0.0


def rate_factor(progress: float, warmup: float) -> float:
    """The learning rate's share of its peak at `progress` (0 to 1) of a run."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        # Warm-up: Adam's first moments are noisy and pruned layers' outputs are off their usual scale.
        return (progress + 1e-3) / (warmup + 1e-3)
    span = 1.0 - warmup
    decayed = (progress - warmup) / span if span > 0 else 1.0
    return FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * decayed))


@dataclass
class Clock:
    """Steps taken out of the planned total, and seconds spent out of the budget."""

    total_steps: int
    budget_s: float | None = None
    started: float = field(default_factory=time.monotonic)
    steps: int = 0

    def tick(self) -> None:
        """One optimizer step done."""
        self.steps += 1

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def progress(self) -> float:
        """Share of the run done: of its steps, or of its time budget, whichever is further."""
        by_steps = self.steps / self.total_steps if self.total_steps else 1.0
        by_time = self.elapsed() / self.budget_s if self.budget_s else 0.0
        return min(1.0, max(by_steps, by_time))

    def done(self) -> bool:
        """Whether the run has used its steps or its time."""
        return self.progress() >= 1.0
