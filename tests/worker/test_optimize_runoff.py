"""optimize's run-off: the contenders close to the fastest timed head to head, ties to the smaller drop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.techniques.search import runoff

FEEDS = {"x": np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)}


def _matmul_chain(path: Path, layers: int) -> Path:
    """`layers` 64x64 MatMul + Relu layers: the run time grows with the count."""
    rng = np.random.default_rng(layers)
    nodes, weights, previous = [], [], "x"
    for index in range(layers):
        weight = (rng.standard_normal((64, 64)) / 8).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"w{index}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{index}"], [f"m{index}"]))
        nodes.append(helper.make_node("Relu", [f"m{index}"], [f"y{index}"]))
        previous = f"y{index}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["n", 64])],
        initializer=weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _row(ident: int, speedup: float, drop: float, steps: int, p50_ms: float = 0.1) -> dict[str, Any]:
    return {
        "id": ident,
        "speedup": speedup,
        "latency_ms": {"p50": p50_ms},
        "accuracy_drop": drop,
        "steps": [{"technique": "quantize.dynamic"}] * steps,
        "size_bytes": 1000,
    }


def _fixed_times(per_session_ms: list[float]) -> Any:
    """A stand-in for the timing loop: every round gives each session the same time (a quiet machine)."""

    def rotate(runs: list[Any], budget_s: float) -> list[list[float]]:
        assert len(runs) == len(per_session_ms)
        return [[ms] * runoff.MIN_ROUNDS for ms in per_session_ms]

    return rotate


def test_contenders_are_the_eligible_trials_close_behind_the_leader() -> None:
    rows = [_row(1, 1.9, 0.0, 1), _row(2, 3.0, 0.0, 1), _row(3, 2.5, 0.0, 2), _row(4, 2.3, 0.0, 1)]

    chosen = runoff.contenders(rows)

    assert [row["id"] for row in chosen] == [2, 3, 4]  # 3.0 / 1.9 = 1.58: more than CLOSE (1.5) slower
    many = [_row(ident, 3.0 - ident / 10, 0.0, 1) for ident in range(1, 8)]
    assert [row["id"] for row in runoff.contenders(many)] == [1, 2, 3, 4]  # at most MAX_CONTENDERS
    assert runoff.contenders([]) == []


def test_a_tie_goes_to_the_smaller_drop_then_fewer_steps(tmp_path: Path, monkeypatch: Any) -> None:
    model = _matmul_chain(tmp_path / "model.onnx", 2)
    # Leader, a contender 2% slower (within the 5% floor) with fewer steps at the same drop, one 2% slower
    # with a smaller drop but 8% slower still (out), and the leader's second session.
    monkeypatch.setattr(runoff, "rotating_ms", _fixed_times([1.0, 1.02, 1.08, 1.0]))
    rows = [_row(1, 2.4, 0.004, 2), _row(2, 2.3, 0.004, 1), _row(3, 2.2, -0.01, 1)]

    result = runoff.run_off(rows, [model] * 3, FEEDS, threads=1, seconds_each=0.01)

    assert result.relative_speed[2] == pytest.approx(1 / 1.02) and result.noise == runoff.MIN_NOISE
    assert result.chosen == 2 and result.conclusive
    assert result.as_dict()["contenders"][2] == {"id": 3, "relative_speed": pytest.approx(1 / 1.08)}
    assert "trial 2 is as fast as the fastest within the noise" in runoff.describe(result)


def test_under_upper_bound_the_tie_goes_to_the_smaller_bound(tmp_path: Path, monkeypatch: Any) -> None:
    model = _matmul_chain(tmp_path / "model.onnx", 2)
    monkeypatch.setattr(runoff, "rotating_ms", _fixed_times([1.0, 1.0, 1.0]))
    lucky = {**_row(1, 2.4, 0.000, 1), "accuracy_drop_bound": 0.02}
    steady = {**_row(2, 2.3, 0.002, 1), "accuracy_drop_bound": 0.008}

    assert runoff.run_off([lucky, steady], [model] * 2, FEEDS, threads=1, seconds_each=0.01).chosen == 1
    by_bound = runoff.run_off(
        [lucky, steady], [model] * 2, FEEDS, threads=1, seconds_each=0.01, by_bound=True
    )
    assert by_bound.chosen == 2


def test_a_machine_too_busy_to_tell_them_apart_keeps_the_leader(tmp_path: Path, monkeypatch: Any) -> None:
    model = _matmul_chain(tmp_path / "model.onnx", 2)
    # The leader's second session ran 30% slower than its first: nothing can be told apart at that noise.
    monkeypatch.setattr(runoff, "rotating_ms", _fixed_times([1.0, 1.0, 1.3]))
    rows = [_row(1, 2.4, 0.004, 2), _row(2, 2.3, 0.0, 1)]

    result = runoff.run_off(rows, [model] * 2, FEEDS, threads=1, seconds_each=0.01)

    assert not result.conclusive and result.chosen == 1
    assert "too much to tell them apart" in runoff.describe(result)


def test_a_contender_that_is_really_faster_wins_over_a_smaller_drop(tmp_path: Path) -> None:
    fast = _matmul_chain(tmp_path / "fast.onnx", 2)
    slow = _matmul_chain(tmp_path / "slow.onnx", 60)
    # Really timed: the slow model (thirty times the work) was measured first by luck and has the
    # smaller drop; head to head it loses by far more than any noise floor.
    rows = [_row(1, 2.4, 0.0, 1), _row(2, 2.2, 0.006, 2)]

    result = runoff.run_off(rows, [slow, fast], FEEDS, threads=1, seconds_each=0.3)

    assert result.relative_speed[1] == 1.0 and result.relative_speed[2] > 2.0
    assert result.chosen == 2 or not result.conclusive


def test_rows_and_models_must_pair_up(tmp_path: Path) -> None:
    model = _matmul_chain(tmp_path / "model.onnx", 2)
    with pytest.raises(ValueError, match="2 contenders but 3 models"):
        runoff.run_off([_row(1, 2.0, 0.0, 1), _row(2, 1.9, 0.0, 1)], [model] * 3, FEEDS, 1, 0.01)


def test_the_least_a_run_off_takes_counts_every_session_and_the_leader_twice() -> None:
    rows = [_row(1, 2.0, 0.0, 1, p50_ms=1000.0), _row(2, 1.9, 0.0, 1, p50_ms=1000.0)]
    runs_each = runoff.WARMUP_RUNS + runoff.REPEATS * runoff.MIN_ROUNDS

    assert runoff.seconds_needed(rows) == pytest.approx(3 * runs_each)
