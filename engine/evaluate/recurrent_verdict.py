"""Verdict warnings for recurrent models: GRUs have no int8 kernel, int8 LSTM weights can ruin outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# onnxruntime's dynamic int8 LSTM; there is no GRU counterpart.
INT8_LSTM = "DynamicQuantizeLSTM"
KEEP_LSTM_FLOAT = (
    'keep the LSTM in float and quantize the rest: quantize.dynamic with op_types ["MatMul", "Gemm"]'
)


def recurrent_warnings(
    *,
    baseline_ops: Mapping[str, int],
    candidate_ops: Mapping[str, int],
    quantized: bool,
    faster: bool,
    fidelity: Mapping[str, Any],
    low_cosine: float,
    over_budget: bool,
) -> list[str]:
    """What a reduced-precision candidate of a recurrent model did not gain, and the way out."""
    warnings = []
    grus = candidate_ops.get("GRU", 0)
    if grus and baseline_ops.get("GRU", 0) and (quantized or not faster):
        text = f"onnxruntime has no int8 GRU kernel: the model's {grus} GRU node(s) stayed float32"
        if not faster:
            text += (
                "; they dominate its run time, so the int8 model is not faster: keep the fp32 model"
                " (an LSTM in place of the GRU has an int8 kernel, DynamicQuantizeLSTM)"
            )
        warnings.append(text)
    cosine = fidelity.get("cosine")
    ruined = over_budget or (cosine is not None and cosine < low_cosine)
    if candidate_ops.get(INT8_LSTM, 0) and ruined:
        shown = f" (cosine {cosine:.4f})" if cosine is not None else ""
        warnings.append(
            f"the int8 LSTM weights changed the outputs{shown}: an LSTM applies the same weights at every"
            f" time step, so their rounding error compounds; {KEEP_LSTM_FLOAT}"
        )
    return warnings
