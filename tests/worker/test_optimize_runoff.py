"""optimize's run-off: the contenders close to the fastest timed head to head, ties to the smaller drop."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
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


def _row(ident: int, speedup: float, drop: float, steps: int) -> dict[str, Any]:
    return {
        "id": ident,
        "speedup": speedup,
        "accuracy_drop": drop,
        "steps": [{"technique": "quantize.dynamic"}] * steps,
        "size_bytes": 1000,
    }


def test_contenders_are_the_eligible_trials_close_behind_the_leader() -> None:
    rows = [_row(1, 1.5, 0.0, 1), _row(2, 3.0, 0.0, 1), _row(3, 2.5, 0.0, 2), _row(4, 2.3, 0.0, 1)]

    chosen = runoff.contenders(rows)

    assert [row["id"] for row in chosen] == [2, 3]  # 2.3 is more than 25% behind 3.0
    assert runoff.contenders([]) == []


def test_a_tie_goes_to_the_smaller_drop_then_fewer_steps_and_a_slower_model_never_wins(
    tmp_path: Path,
) -> None:
    fast = _matmul_chain(tmp_path / "fast.onnx", 2)
    same = Path(shutil.copy(fast, tmp_path / "same.onnx"))
    slow = _matmul_chain(tmp_path / "slow.onnx", 60)
    # The leader's speedup was measured high by luck; the contender is the same model with one step less
    # at the same drop; the slow model has the smallest drop of all but does thirty times the work.
    rows = [_row(1, 2.4, 0.004, 2), _row(2, 2.0, 0.004, 1), _row(3, 2.0, -0.01, 1)]

    result = runoff.run_off(rows, [fast, same, slow], FEEDS, threads=1, seconds_each=0.3)

    assert list(result.relative_speed) == [1, 2, 3]
    assert result.relative_speed[3] < 0.5
    assert abs(result.relative_speed[2] - 1.0) <= result.noise
    assert result.chosen == 2
    assert result.as_dict()["chosen"] == 2 and result.as_dict()["relative_speed"]["3"] < 0.5


def test_a_contender_that_is_really_faster_wins_over_a_smaller_drop(tmp_path: Path) -> None:
    fast = _matmul_chain(tmp_path / "fast.onnx", 2)
    slow = _matmul_chain(tmp_path / "slow.onnx", 60)
    # The slow model measured first by luck and with the smaller drop: head to head it loses.
    rows = [_row(1, 2.4, 0.0, 1), _row(2, 2.2, 0.006, 2)]

    result = runoff.run_off(rows, [slow, fast], FEEDS, threads=1, seconds_each=0.3)

    assert result.relative_speed[2] > 2.0
    assert result.chosen == 2
