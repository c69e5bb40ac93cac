"""optimize's run-off: the candidates close to the fastest are timed against each other before one is chosen.

Each trial's speedup comes from its own interleaved pair with the original, taken minutes apart from
the others', so two trials' speedups differ by the noise of two separate measurements: on a model that
runs in a tenth of a millisecond one model measured 2.05x in one pair and 2.52x in another. The
contenders within CLOSE of the leader and a second session of the leader run in rotating order, round
by round, so their ratios cancel load that comes and goes, and the leader against itself gives the
noise floor. Contenders not slower than the fastest beyond that floor are tied; among them the smaller
measured drop wins, then the fewer steps (a step that buys no speed can still cost accuracy on data the
evaluation set does not hold), then the smaller model.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from engine.evaluate.sessions import feeds_for, make_session

# A trial is a contender when its speedup is at least the leader's / (1 + CLOSE).
CLOSE = 0.25
MAX_CONTENDERS = 4
REPEATS = 3
WARMUP_RUNS = 3
MIN_ROUNDS = 3
# Never call a difference smaller than this real, however quiet the leader's A/A runs were: the report
# calls under 5% within run-to-run noise on a shared CPU too (service.report.decision.FASTER).
MIN_NOISE = 0.05


@dataclass(frozen=True)
class Runoff:
    """The contenders' speed relative to the leader (leader time / its time), the noise floor, the winner."""

    relative_speed: dict[int, float]
    noise: float
    chosen: int

    def as_dict(self) -> dict[str, Any]:
        """The run-off as the step's metrics store it (trial ids as keys)."""
        return {
            "contenders": list(self.relative_speed),
            "relative_speed": {str(ident): speed for ident, speed in self.relative_speed.items()},
            "noise": self.noise,
            "chosen": self.chosen,
        }


def contenders(eligible: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leader by measured speedup and the trials close enough behind it to be the same speed."""
    ranked = sorted(eligible, key=lambda row: (-row["speedup"], row["size_bytes"]))
    if not ranked:
        return []
    floor = ranked[0]["speedup"] / (1.0 + CLOSE)
    return [row for row in ranked if row["speedup"] >= floor][:MAX_CONTENDERS]


def run_off(
    rows: Sequence[dict[str, Any]],
    paths: Sequence[Path],
    feeds: dict[str, Any],
    threads: int,
    seconds_each: float,
) -> Runoff:
    """Time rows[0] (the leader), the others and the leader again in turn; pick among the tied."""
    sessions = [make_session(path, threads) for path in (*paths, paths[0])]
    runs = [partial(session.run, None, feeds_for(session, feeds)) for session in sessions]
    for run in runs * WARMUP_RUNS:
        run()
    speeds: list[list[float]] = [[] for _ in rows]
    same: list[float] = []
    for _ in range(REPEATS):
        times = _rotate(runs, seconds_each * len(runs) / REPEATS)
        leader = times[0]
        for index in range(len(rows)):
            speeds[index].append(statistics.median(a / b for a, b in zip(leader, times[index], strict=True)))
        same.append(statistics.median(a / b for a, b in zip(leader, times[-1], strict=True)))
    relative = {row["id"]: statistics.median(speed) for row, speed in zip(rows, speeds, strict=True)}
    noise = max([MIN_NOISE, *(abs(1.0 - ratio) for ratio in same)])
    return Runoff(relative, noise, _winner(rows, relative, noise)["id"])


def _winner(rows: Sequence[dict[str, Any]], relative: dict[int, float], noise: float) -> dict[str, Any]:
    """Among the rows as fast as the fastest within the noise: least drop, fewest steps, smallest size."""
    fastest = max(relative.values())
    tied = [row for row in rows if relative[row["id"]] >= fastest * (1.0 - noise)]
    return min(tied, key=lambda row: (row["accuracy_drop"], len(row["steps"]), row["size_bytes"]))


def _rotate(runs: Sequence[Callable[[], object]], budget_s: float) -> list[list[float]]:
    """Milliseconds per run of each callable, all of them once a round, the first of each round rotating."""
    times: list[list[float]] = [[] for _ in runs]
    start = time.perf_counter()
    rounds = 0
    while rounds < MIN_ROUNDS or time.perf_counter() - start < budget_s:
        for offset in range(len(runs)):
            which = (rounds + offset) % len(runs)
            before = time.perf_counter()
            runs[which]()
            times[which].append((time.perf_counter() - before) * 1000.0)
        rounds += 1
    return times
