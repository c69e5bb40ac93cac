"""Verdict warnings that name what to try instead, by kind of candidate."""

from __future__ import annotations

from typing import Any

from engine.evaluate.precision import DYNAMIC_INT8, FLOAT16, STATIC_INT8
from engine.evaluate.verdict import judge

GOOD_FIDELITY = {"cosine": 0.9999, "top1_agreement": 1.0, "max_abs_error": 0.01}
NODE_ERRORS = [
    {"node": "/head/Gemm", "op_type": "Gemm", "cosine": 0.999, "relative_error": 0.03, "added_error": 0.001},
    {"node": "/block/Conv", "op_type": "Conv", "cosine": 0.999, "relative_error": 0.02, "added_error": 0.015},
]


def _judge(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "size_ratio": 0.3, "speedup": {"1": 2.0, "8": 2.0}, "accuracy_drop": 0.0, "max_accuracy_drop": 0.01,
        "metric": "top1", "fidelity": GOOD_FIDELITY, "baseline_ops": {"Conv": 2}, "candidate_ops": {},
    }  # fmt: skip
    options.update(overrides)
    return judge(**options)


def test_slower_static_int8_suggests_quantizing_only_heavy_layers() -> None:
    verdict = _judge(speedup={"1": 0.8, "8": 1.2}, candidate_kind=STATIC_INT8)
    assert verdict["faster"] is False
    assert any('op_types ["Conv", "MatMul", "Gemm"]' in warning for warning in verdict["warnings"])


def test_float16_without_a_speedup_points_to_int8() -> None:
    verdict = _judge(size_ratio=0.5, speedup={"8": 1.01}, candidate_kind=FLOAT16)
    assert any("float16 is not faster" in w and "try quantize.static" in w for w in verdict["warnings"])


def test_slower_dynamic_int8_convolutions_keep_the_one_specific_warning() -> None:
    verdict = _judge(speedup={"8": 0.3}, candidate_ops={"ConvInteger": 2}, candidate_kind=DYNAMIC_INT8)
    assert verdict["warnings"] == [
        "candidate is not faster than the original at batch 8 (0.30x)",
        "dynamic int8 is slower than fp32 for this convolutional model; try quantize.static",
    ]


def test_over_budget_names_quantize_auto_and_the_node_that_adds_most_error() -> None:
    verdict = _judge(accuracy_drop=0.03, candidate_kind=STATIC_INT8, node_errors=NODE_ERRORS)
    assert verdict["within_accuracy_budget"] is False
    (warning,) = [w for w in verdict["warnings"] if w.startswith("top1 dropped by 0.0300")]
    assert "quantize.auto with max_accuracy_drop=0.01" in warning
    assert 'calibration_method "Entropy" or "Percentile"' in warning
    assert "node /block/Conv (Conv" in warning


def test_low_fidelity_of_dynamic_int8_suggests_per_channel() -> None:
    fidelity = {"cosine": 0.95, "top1_agreement": 0.9, "max_abs_error": 2.0}
    verdict = _judge(
        accuracy_drop=None, max_accuracy_drop=None, fidelity=fidelity, candidate_kind=DYNAMIC_INT8
    )
    (warning,) = [w for w in verdict["warnings"] if "differ noticeably" in w]
    assert "per_channel true" in warning


def test_pruned_weights_that_do_not_shrink_the_file_point_to_structured_pruning() -> None:
    verdict = _judge(size_ratio=1.0, density=0.4)
    assert verdict["smaller"] is False
    assert any("60% of the weights are zero" in w and "prune.structured" in w for w in verdict["warnings"])


def test_a_drop_equal_to_the_budget_is_within_it_despite_rounding() -> None:
    assert 0.95 - 0.94 > 0.01
    assert _judge(accuracy_drop=0.95 - 0.94, max_accuracy_drop=0.01)["within_accuracy_budget"] is True
