"""Where a model spends its time: onnxruntime's per-node profile summed by operator type."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

# Operators onnxruntime's CPU provider runs in int8 (QLinear*/ConvInteger/MatMulInteger kernels).
INT8_KERNELS = {
    "Conv", "MatMul", "Gemm", "ConvTranspose", "LSTM", "GRU", "Attention", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Add", "Mul", "Sigmoid", "LeakyRelu", "Concat", "Softmax",
}  # fmt: skip


def op_time_shares(
    model: Path, inputs: dict[str, np.ndarray], batch: int = 8, runs: int = 5
) -> dict[str, float]:
    """Share of kernel time per operator type (after onnxruntime's fusions), largest first."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(model.parent / "profile")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    names = {meta.name for meta in session.get_inputs()}
    feeds = {
        n: np.ascontiguousarray(np.resize(a, (batch, *a.shape[1:]))) for n, a in inputs.items() if n in names
    }
    for _ in range(runs):
        session.run(None, feeds)
    trace = Path(session.end_profiling())
    totals: Counter[str] = Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            totals[event["args"].get("op_name", "?")] += int(event.get("dur", 0))
    trace.unlink()
    total = sum(totals.values()) or 1
    return {op: round(microseconds / total, 3) for op, microseconds in totals.most_common(6)}


def int8_share(shares: dict[str, float]) -> float:
    """Fraction of the profiled time spent in operators that have an int8 kernel."""
    return round(sum(share for op, share in shares.items() if op in INT8_KERNELS), 3)
