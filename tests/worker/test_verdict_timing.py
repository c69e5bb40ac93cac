"""The verdict and the interleaved timing loop, checked from numbers (no models, no clock luck)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.evaluate.benchmark import MIN_ROUNDS, rotating_ms, time_pair
from engine.evaluate.verdict import judge


def test_verdict_for_a_slower_int8_convolutional_model() -> None:
    verdict = judge(
        size_ratio=0.3, speedup={"1": 0.62, "8": 1.4}, accuracy_drop=0.03, max_accuracy_drop=0.01,
        metric="top1", fidelity={"cosine": 0.999, "top1_agreement": 0.995, "max_abs_error": 0.1},
        baseline_ops={"Conv": 2}, candidate_ops={"ConvInteger": 2},
    )  # fmt: skip
    assert verdict["smaller"] is True
    assert verdict["faster"] is False
    assert verdict["within_accuracy_budget"] is False
    assert verdict["warnings"] == [
        "candidate is not faster than the original at batch 1 (0.62x)",
        "dynamic int8 is slower than fp32 for this convolutional model; try quantize.static",
        "top1 dropped by 0.0300, more than the allowed 0.0100",
    ]


def test_verdict_for_a_clear_win_has_no_warnings() -> None:
    verdict = judge(
        size_ratio=0.26, speedup={"1": 1.9, "8": 2.4}, accuracy_drop=0.002, max_accuracy_drop=0.01,
        metric="top1", fidelity={"cosine": 0.999, "top1_agreement": 0.995, "max_abs_error": 0.01},
        baseline_ops={"MatMul": 3}, candidate_ops={"MatMulInteger": 3},
    )  # fmt: skip
    assert verdict == {"smaller": True, "faster": True, "within_accuracy_budget": True, "warnings": []}


def test_verdict_flags_no_gain_and_low_fidelity() -> None:
    verdict = judge(
        size_ratio=1.0, speedup={"1": 1.02}, accuracy_drop=None, max_accuracy_drop=None, metric=None,
        fidelity={"cosine": 0.9, "top1_agreement": 0.8, "max_abs_error": 3.0},
        baseline_ops={}, candidate_ops={},
    )  # fmt: skip
    assert verdict["smaller"] is False
    assert verdict["faster"] is False
    assert verdict["within_accuracy_budget"] is None
    assert len(verdict["warnings"]) == 3
    assert "about as fast as the original at batch 1 (1.02x)" in verdict["warnings"][1]


def test_timing_alternates_and_stops_at_the_budget() -> None:
    calls: list[str] = []
    now = [0.0]

    def clock() -> float:
        return now[0]

    def runner(name: str, cost: float) -> Any:
        def run() -> None:
            calls.append(name)
            now[0] += cost

        return run

    # Costs are binary fractions so that the simulated clock adds up exactly.
    timing = time_pair(runner("a", 1 / 64), runner("b", 3 / 64), warmup_runs=2, budget_s=1.0, clock=clock)
    assert calls[:4] == ["a", "b", "a", "b"]
    timed = calls[4:]
    assert timed[:4] == ["a", "b", "b", "a"]
    assert timing.rounds == 16
    assert np.allclose(timing.baseline_ms, 15.625) and np.allclose(timing.candidate_ms, 46.875)

    slow = time_pair(runner("a", 5.0), runner("b", 5.0), warmup_runs=0, budget_s=1.0, clock=clock)
    assert slow.rounds == MIN_ROUNDS


def test_rotating_timing_turns_the_order_around_every_other_round() -> None:
    calls: list[int] = []
    runs = [lambda which=which: calls.append(which) for which in range(3)]

    times = rotating_ms(runs, budget_s=0.0)

    assert calls == [0, 1, 2, 0, 2, 1, 2, 0, 1]  # rotated, then backwards, then rotated again
    assert [len(ms) for ms in times] == [MIN_ROUNDS] * 3
