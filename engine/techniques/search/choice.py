"""optimize's choice among measured trials: which qualify, which is best, which comes closest."""

from __future__ import annotations

from typing import Any

from engine.evaluate.accuracy import within_budget


def choose(
    trials: list[dict[str, Any]], objective: str, max_drop: float, *, upper_bound: bool = False
) -> dict[str, Any]:
    """The best measured trial within budget and not slower than the original; else the original.

    For a speed objective this is the leader of the run-off, which may still choose a contender.
    """
    rows = eligible(trials, max_drop, upper_bound=upper_bound)
    if not rows:
        return trials[0]
    if objective == "size":
        return min(rows, key=lambda row: (row["size_bytes"], -row["speedup"]))
    return max(rows, key=lambda row: (row["speedup"], -row["size_bytes"]))


def eligible(
    trials: list[dict[str, Any]], max_drop: float, *, upper_bound: bool = False
) -> list[dict[str, Any]]:
    """The trials the choice is made among.

    With `upper_bound`, candidates whose drop stays within the budget at its upper confidence bound
    come first: the fastest of many noisy measurements is often one whose drop was measured low by
    luck (a pruned model that flips many answers both ways), and it then misses the budget on new
    data. When none does, the measured drop decides.
    """
    rows = qualifying(trials)
    if upper_bound:
        rows = [row for row in rows if confidently_within(row, max_drop)] or rows
    return rows


def qualifying(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured candidates within the budget as measured and not slower than the original."""
    return [
        row for row in trials[1:] if row["status"] == "ok" and row["within_budget"] and row["speedup"] >= 1.0
    ]


def confidently_within(row: dict[str, Any], max_drop: float) -> bool:
    """Whether a measured trial's drop is within the budget even at its upper confidence bound."""
    bound = row.get("accuracy_drop_bound")
    return bound is None or within_budget(bound, max_drop)


def closest(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured candidate with the least drop, for a search where none met the budget."""
    measured = [row for row in trials[1:] if row["status"] == "ok"]
    return min(measured, key=lambda row: (row["accuracy_drop"], -row["speedup"])) if measured else None
