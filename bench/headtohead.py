"""Head to head: a hand recipe's candidate against ModelPress's, timed directly against each other.

Each recipe's speedup in the tables comes from its own interleaved pair with fp32, so two recipes'
speedups differ by the noise of two separate measurements. Here the two candidates and a second
session of the hand candidate run in rotating order, several times over: the hand candidate against
itself, measured under the same load, gives the noise floor that decides whether a difference is real.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from engine.evaluate.benchmark import rotating_ms
from engine.evaluate.sessions import make_session

REPEATS = 3
BUDGET_S = 0.6
WARMUP_RUNS = 5
# A repeat lasts long enough for this many runs of each model, however slow they are.
MIN_RUNS = 20
# Never call a difference smaller than this real, however quiet the A/A runs were.
MIN_TOLERANCE = 0.02


@dataclass(frozen=True)
class Duel:
    """hand (or fp32) time / ModelPress time per batch size and repeat (above 1: ModelPress faster), and
    the same for the first model against a second session of itself (A/A)."""

    hand: str
    modelpress: str
    ratios: dict[int, list[float]]
    same_model: dict[int, list[float]]

    def median(self, batch: int) -> float:
        """The median ratio over the repeats."""
        return statistics.median(self.ratios[batch])

    @property
    def tolerance(self) -> float:
        """The largest A/A departure from 1 (at least MIN_TOLERANCE): smaller differences are noise."""
        spread = [abs(1.0 - ratio) for ratios in self.same_model.values() for ratio in ratios]
        return max([MIN_TOLERANCE, *spread])

    def as_fast(self, batch: int) -> bool:
        """ModelPress is at least as fast as the hand recipe, within the noise floor."""
        return self.median(batch) >= 1.0 - self.tolerance


def duel(
    names: tuple[str, str], hand: Path, modelpress: Path, test_npz: Path, batch_sizes: list[int], threads: int
) -> Duel:
    """Time the two candidates against each other and the hand one against itself, all three in turn."""
    with np.load(test_npz, allow_pickle=False) as stored:
        images = stored["x"]
    sessions = [make_session(path, threads) for path in (hand, modelpress, hand)]
    ratios: dict[int, list[float]] = {batch: [] for batch in batch_sizes}
    same: dict[int, list[float]] = {batch: [] for batch in batch_sizes}
    for batch in batch_sizes:
        feeds = {"x": images[:batch]}
        runs = [partial(session.run, None, feeds) for session in sessions]
        for run in runs * WARMUP_RUNS:
            run()
        budget = max(BUDGET_S, MIN_RUNS * _seconds_per_round(runs))
        for _ in range(REPEATS):
            # Round by round the three runs sit next to each other in time, so their ratio cancels load
            # that comes and goes; the median over rounds is the repeat's figure.
            hand_ms, ours_ms, again_ms = (np.array(ms) for ms in rotating_ms(runs, budget))
            ratios[batch].append(float(np.median(hand_ms / ours_ms)))
            same[batch].append(float(np.median(hand_ms / again_ms)))
    return Duel(names[0], names[1], ratios, same)


def _seconds_per_round(runs: Sequence[Callable[[], object]]) -> float:
    """Wall time of one run of each."""
    started = time.perf_counter()
    for run in runs:
        run()
    return time.perf_counter() - started
