"""Verdict warnings for recurrent models, from the comparison's numbers alone."""

from __future__ import annotations

from typing import Any

from engine.evaluate.precision import DYNAMIC_INT8
from engine.evaluate.verdict import judge

GOOD = {"cosine": 0.9999, "top1_agreement": 1.0, "max_abs_error": 0.01}


def _judge(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "size_ratio": 0.5, "speedup": {"8": 1.5}, "accuracy_drop": 0.0, "max_accuracy_drop": 0.01,
        "metric": "top1", "fidelity": GOOD, "baseline_ops": {"GRU": 1, "Gemm": 1},
        "candidate_ops": {"GRU": 1, "MatMulInteger": 1}, "candidate_kind": DYNAMIC_INT8,
    }  # fmt: skip
    options.update(overrides)
    return judge(**options)


def test_a_slower_int8_gru_model_is_not_called_faster_and_the_gru_is_named() -> None:
    verdict = _judge(speedup={"8": 0.97})
    assert verdict["faster"] is False
    (named,) = [w for w in verdict["warnings"] if "no int8 GRU kernel" in w]
    assert "1 GRU node(s) stayed float32" in named and "not faster: keep the fp32 model" in named


def test_a_faster_int8_gru_model_still_says_the_gru_stayed_float() -> None:
    (named,) = [w for w in _judge()["warnings"] if "no int8 GRU kernel" in w]
    assert "not faster" not in named


def test_ruined_int8_lstm_names_keeping_it_float() -> None:
    lstm = {"baseline_ops": {"LSTM": 1}, "candidate_ops": {"DynamicQuantizeLSTM": 1}}
    ruined = _judge(fidelity={**GOOD, "cosine": 0.46}, **lstm)["warnings"]
    assert any("cosine 0.4600" in w and 'op_types ["MatMul", "Gemm"]' in w for w in ruined)
    over_budget = _judge(accuracy_drop=0.05, **lstm)["warnings"]
    assert any(w.startswith("the int8 LSTM weights changed the outputs") for w in over_budget)
    assert not any("LSTM" in w for w in _judge(**lstm)["warnings"])
