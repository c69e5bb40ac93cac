"""The decision page's data: trial points from optimize's table, the frontier, the recommendation."""

from __future__ import annotations

from typing import Any

from service.report.decision import pareto_front, recommendation, trial_points


def _optimize_report() -> dict[str, Any]:
    """A job whose only step is `optimize`, with its trial table (issue 17 §1)."""
    trials = [
        {"id": "t1", "steps": [{"technique": "quantize.dynamic"}], "size_bytes": 300,
         "latency_ms": {"p50": 4.0, "p90": 4.5, "p99": 5.0}, "accuracy_drop": 0.02, "time_s": 3,
         "status": "ok"},
        {"id": "t2", "steps": [{"technique": "prune.structured"}, {"technique": "quantize.static"}],
         "size_bytes": 200, "latency_ms": {"p50": 2.0, "p90": 2.2, "p99": 2.5}, "accuracy_drop": 0.01,
         "time_s": 9, "status": "ok"},
        {"id": "t3", "steps": [{"technique": "quantize.fp16"}], "size_bytes": 500,
         "latency_ms": {"p50": 6.0, "p90": 6.5, "p99": 7.0}, "fidelity": {"cosine": 0.999}, "time_s": 2,
         "status": "ok"},
        {"id": "t4", "steps": [{"technique": "tensorrt.build"}], "status": "failed", "error": "no GPU"},
    ]  # fmt: skip
    return {
        "steps": [{"index": 0, "technique": "optimize", "metrics": {"trials": trials, "best": "t2"}}],
        "comparison": {
            "baseline": {"accuracy": {"top1": 0.97}},
            "delta": {"speedup": {"1": 1.4, "8": 2.9}, "size_ratio": 0.27, "accuracy_drop": 0.003},
            "verdict": {"within_accuracy_budget": True},
        },
    }


def test_optimize_trials_become_points_and_failed_ones_are_left_out() -> None:
    points = trial_points(_optimize_report())
    assert [point["label"] for point in points] == [
        "step 1 trial t1: quantize.dynamic",
        "step 1 trial t2: prune.structured then quantize.static",
        "step 1 trial t3: quantize.fp16",
    ]
    assert [point["latency_ms"] for point in points] == [4.0, 2.0, 6.0]
    assert [round(point["loss"], 6) for point in points] == [0.02, 0.01, 0.001]
    assert [point["chosen"] for point in points] == [False, True, False]
    # t2 beats t1 on every axis; t3 is slower and larger but loses the least.
    assert pareto_front(points) == [1, 2]


def test_the_recommendation_names_the_chosen_trial_and_its_gains_in_words() -> None:
    text = recommendation(_optimize_report())
    assert text == (
        "Use optimize trial t2 (prune.structured then quantize.static): 2.9x faster at batch 8,"
        " 0.27x the size, 0.3 points lower top1."
    )


def test_the_recommendation_keeps_the_original_when_the_budget_is_missed_or_nothing_is_gained() -> None:
    report = _optimize_report()
    report["comparison"]["verdict"]["within_accuracy_budget"] = False
    assert recommendation(report).startswith("Keep the original: optimize trial t2")
    report["comparison"]["verdict"]["within_accuracy_budget"] = None
    report["comparison"]["delta"].update(speedup={"8": 0.9}, size_ratio=1.2)
    assert recommendation(report) == (
        "Keep the original: optimize trial t2 (prune.structured then quantize.static) is neither faster"
        " (0.90x at batch 8) nor smaller."
    )
