"""quantize.auto's search schedule and its choice of trial, on synthetic outcomes."""

from __future__ import annotations

import math

import pytest

from engine.techniques.quantize.auto.search import ExclusionSearch, choose
from engine.techniques.quantize.auto.trials import Trial


def _walk(candidates: int, passes_from: int | None) -> list[int]:
    """The exclusion counts the search tries when keeping >= passes_from nodes in float meets the budget."""
    search = ExclusionSearch(candidates)
    tried = []
    while (count := search.next_count()) is not None:
        tried.append(count)
        search.record(count, passes_from is not None and count >= passes_from)
    return tried


def test_counts_double_until_a_pass_then_bisect() -> None:
    assert _walk(20, 5) == [1, 2, 4, 8, 6, 5]


@pytest.mark.parametrize("candidates", [2, 3, 7, 16, 50])
def test_finds_the_fewest_float_nodes_that_meet_the_budget(candidates: int) -> None:
    bound = 2 * math.ceil(math.log2(candidates)) + 1
    for threshold in range(1, candidates):
        tried = _walk(candidates, threshold)
        assert min(count for count in tried if count >= threshold) == threshold
        assert len(tried) <= bound


def test_never_keeps_every_quantized_node_in_float() -> None:
    assert _walk(6, None) == [1, 2, 4, 5]
    assert _walk(1, None) == []


def _trial(index: int, drop: float, speedup: float, within: bool, excluded: int = 0) -> Trial:
    return Trial(
        trial=index, excluded_nodes=[f"n{i}" for i in range(excluded)], accuracy=1.0 - drop,
        accuracy_drop=drop, within_budget=within, latency_ms=1.0 / speedup, speedup=speedup,
        size_bytes=1000, seconds=0.1,
    )  # fmt: skip


def test_choice_is_the_fastest_trial_within_budget() -> None:
    trials = [
        _trial(0, 0.05, 3.0, within=False),
        _trial(1, 0.01, 2.0, within=True, excluded=1),
        _trial(2, 0.00, 2.5, within=True, excluded=2),
    ]
    assert choose(trials).trial == 2


def test_without_a_trial_within_budget_the_least_drop_wins() -> None:
    trials = [
        _trial(0, 0.05, 3.0, within=False),
        _trial(1, 0.02, 1.1, within=False, excluded=1),
        _trial(2, 0.03, 2.5, within=False, excluded=2),
    ]
    assert choose(trials).trial == 1
