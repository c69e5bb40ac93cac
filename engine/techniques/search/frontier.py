"""The Pareto frontier of measured candidates on (accuracy drop, latency, size), all minimised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _point(trial: dict[str, Any]) -> tuple[float, float, float]:
    return (trial["accuracy_drop"], trial["latency_ms"]["p50"], float(trial["size_bytes"]))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is no worse than b everywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto(trials: list[dict[str, Any]]) -> list[int]:
    """Ids of the measured trials that no other measured trial dominates, in trial order."""
    measured = [trial for trial in trials if trial["status"] == "ok"]
    return [
        trial["id"]
        for trial in measured
        if not any(dominates(_point(other), _point(trial)) for other in measured if other is not trial)
    ]
