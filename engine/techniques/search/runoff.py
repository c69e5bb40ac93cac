"""optimize's run-off: the candidates close to the fastest are timed against each other before one is chosen.

Each trial's speedup comes from its own interleaved pair with the original, taken minutes apart from
the others', so two trials' speedups differ by the noise of two separate measurements: on a model that
runs in a tenth of a millisecond one model measured 2.05x in one pair and 2.52x in another. The
contenders (at most CLOSE times slower than the leader as measured) and a second session of the leader
run round by round, in an order that rotates and turns around every other round, so they share the
load that comes and goes and no session always follows the same neighbour; the leader against itself
gives the noise floor. Contenders not slower than the fastest beyond that floor are tied; among
them the smaller drop wins (its upper bound under drop_confidence upper_bound), then the fewer steps (a
step that buys no speed can still cost accuracy on data the evaluation set does not hold), then the
smaller model. When the leader's two sessions disagree by more than MAX_NOISE, the run-off cannot tell
anything apart and the leader stays.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from engine.evaluate.benchmark import MIN_ROUNDS, rotating_ms
from engine.evaluate.sessions import feeds_for, make_session

# A trial is a contender when the leader's measured speedup is at most CLOSE times its own: two trials'
# speedups, each from its own pair with the original, were 27% apart on models 5% apart head to head.
CLOSE = 1.5
MAX_CONTENDERS = 4
REPEATS = 3
WARMUP_RUNS = 3
# Never call a difference smaller than this real, however quiet the leader's A/A runs were: the report
# calls under 5% within run-to-run noise on a shared CPU too (service.report.decision.FASTER).
MIN_NOISE = 0.05
# Above this the machine was too busy for the run-off to tell the contenders apart.
MAX_NOISE = 0.125


@dataclass(frozen=True)
class Runoff:
    """The contenders' speed relative to the leader (leader time / its time), the noise floor, the winner."""

    relative_speed: dict[int, float]
    noise: float
    chosen: int

    @property
    def conclusive(self) -> bool:
        """Whether the leader's two sessions agreed closely enough to tell the contenders apart."""
        return self.noise <= MAX_NOISE

    def as_dict(self) -> dict[str, Any]:
        """The run-off as the step's metrics store it."""
        return {
            "contenders": [
                {"id": ident, "relative_speed": speed} for ident, speed in self.relative_speed.items()
            ],
            "noise": self.noise,
            "conclusive": self.conclusive,
            "chosen": self.chosen,
        }


def contenders(eligible: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leader by measured speedup and the trials close enough behind it to be the same speed."""
    ranked = sorted(eligible, key=lambda row: (-row["speedup"], row["size_bytes"]))
    if not ranked:
        return []
    floor = ranked[0]["speedup"] / CLOSE
    return [row for row in ranked if row["speedup"] >= floor][:MAX_CONTENDERS]


def seconds_needed(rows: Sequence[dict[str, Any]]) -> float:
    """The least a run-off of `rows` takes: every session's warm-up and its fewest timed rounds."""
    runs_each = WARMUP_RUNS + REPEATS * MIN_ROUNDS
    p50s = [row["latency_ms"]["p50"] for row in (*rows, rows[0])]
    return runs_each * sum(p50s) / 1000.0


def run_off(
    rows: Sequence[dict[str, Any]],
    paths: Sequence[Path],
    feeds: dict[str, Any],
    threads: int,
    seconds_each: float,
    *,
    by_bound: bool = False,
) -> Runoff:
    """Time rows[0] (the leader), the others and the leader again in turn; pick among the tied."""
    if len(rows) != len(paths):
        raise ValueError(f"{len(rows)} contenders but {len(paths)} models")
    sessions = [make_session(path, threads) for path in (*paths, paths[0])]
    runs = [partial(session.run, None, feeds_for(session, feeds)) for session in sessions]
    for run in runs * WARMUP_RUNS:
        run()
    speeds: list[list[float]] = [[] for _ in rows]
    same: list[float] = []
    for _ in range(REPEATS):
        # Ratios of medians, as the trials' speedups are (p50 against p50): the median of each round's
        # ratio is another statistic, 2.7x where the p50s gave 2.1x on an MLP whose runs spread widely.
        medians = [
            statistics.median(times) for times in rotating_ms(runs, seconds_each * len(runs) / REPEATS)
        ]
        for index in range(len(rows)):
            speeds[index].append(medians[0] / medians[index])
        same.append(medians[0] / medians[-1])
    relative = {row["id"]: statistics.median(speed) for row, speed in zip(rows, speeds, strict=True)}
    noise = max([MIN_NOISE, *(abs(1.0 - ratio) for ratio in same)])
    chosen = _winner(rows, relative, noise, by_bound)["id"] if noise <= MAX_NOISE else rows[0]["id"]
    return Runoff(relative, noise, chosen)


def describe(runoff: Runoff) -> str:
    """Why the run-off's winner was chosen, in words."""
    speeds = runoff.relative_speed
    leader = next(iter(speeds))
    timed = ", ".join(f"trial {ident} {speed:.2f}x" for ident, speed in speeds.items())
    head = f"timed head to head, speed relative to trial {leader}: {timed}"
    if not runoff.conclusive:
        return (
            f"{head}; trial {leader} against itself differed by {runoff.noise:.0%}, too much to tell them"
            f" apart: trial {leader}, the fastest as first measured, is kept"
        )
    if speeds[runoff.chosen] == max(speeds.values()):
        return f"{head}: trial {runoff.chosen} is the fastest"
    return (
        f"{head}: trial {runoff.chosen} is as fast as the fastest within the noise ({runoff.noise:.0%},"
        " from the leader against itself) and has the smallest drop, fewest steps or smallest size of those"
    )


def _winner(
    rows: Sequence[dict[str, Any]], relative: dict[int, float], noise: float, by_bound: bool
) -> dict[str, Any]:
    """Among the rows as fast as the fastest within the noise: least drop, fewest steps, smallest size."""
    fastest = max(relative.values())
    tied = [row for row in rows if relative[row["id"]] >= fastest * (1.0 - noise)]
    return min(tied, key=lambda row: (_drop(row, by_bound), len(row["steps"]), row["size_bytes"]))


def _drop(row: dict[str, Any], by_bound: bool) -> float:
    """The drop the tie is broken on: its upper bound when the choice is made on bounds."""
    bound = row.get("accuracy_drop_bound")
    return float(bound) if by_bound and bound is not None else float(row["accuracy_drop"])
