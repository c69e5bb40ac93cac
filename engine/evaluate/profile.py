"""Per-operator profile: where a model's time goes, from onnxruntime's profiler (node kernel events).

Profiling slows the runs it watches, so it runs in its own sessions after the timed benchmark; its
figures explain the latency, they do not replace it.
"""

from __future__ import annotations

import bisect
import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluate.profiler_overhead import bookkeeping_ms, calibration_shape, node_tensors
from engine.evaluate.sessions import feeds_for, make_session

TOP_NODES = 10
MIN_RUNS = 20
MAX_RUNS = 200
MAX_EVENTS = 50_000
MAX_WARMUP_RUNS = 25
WARMUP_SHARE = 0.2
# Nodes onnxruntime inserts around int8 kernels: the price a static int8 model pays at each boundary.
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
# Heavy op types that have an int8 kernel; found in float in a quantized model, they fell back to fp32.
HAS_INT8_KERNEL = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "MatMul",
        "Gemm",
        "FusedConv",
        "FusedMatMul",
        "FusedGemm",
        "LSTM",
        "GRU",
        "Attention",
    }
)


def node_events(
    trace: Iterable[Mapping[str, Any]], *, skip_runs: int = 0, bookkeeping: tuple[float, float] = (0.0, 0.0)
) -> list[dict[str, Any]]:
    """The kernel-time events of a trace (run, node, op type, provider, ms), after the first `skip_runs` runs.

    `run` counts from 0 at the first kept run; a node belongs to the last run started before it.
    `bookkeeping` (ms per node, per input or output tensor) is the profiler's own work inside each
    span (profiler_overhead.py), taken off every node's time.
    """
    per_node, per_tensor = bookkeeping
    trace = list(trace)
    starts = sorted(
        float(e.get("ts", 0)) for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    events = []
    for event in trace:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        run = bisect.bisect_right(starts, float(event.get("ts", 0))) - 1 - skip_runs
        if starts and run < 0:
            continue
        args = event.get("args") or {}
        span = float(event.get("dur", 0)) / 1000.0
        bookkept = min(per_node + per_tensor * node_tensors(args), span)
        events.append(
            {
                "run": max(run, 0),
                "node": name[: -len("_kernel_time")],
                "op_type": str(args.get("op_name", "?")),
                "provider": str(args.get("provider", "?")),
                "ms": span - bookkept,
                "bookkeeping_ms": bookkept,
            }
        )
    return events


def aggregate(events: list[dict[str, Any]], runs: int, *, top: int = TOP_NODES) -> dict[str, Any]:
    """Time per op type and for the slowest nodes in the median run: ms, share of its total, node count.

    The median run, not the mean: one run slowed by another process would otherwise dominate a small
    model's figures.
    """
    totals: dict[int, float] = {}
    for event in events:
        totals[event["run"]] = totals.get(event["run"], 0.0) + event["ms"]
    ranked = sorted(totals, key=lambda run: totals[run])
    typical = ranked[(len(ranked) - 1) // 2] if ranked else 0
    kept = [event for event in events if event["run"] == typical]
    total = totals.get(typical, 0.0)
    by_type: dict[str, dict[str, Any]] = {}
    by_node: dict[str, dict[str, Any]] = {}
    for event in kept:
        kind = by_type.setdefault(event["op_type"], {"ms": 0.0, "nodes": set()})
        kind["ms"] += event["ms"]
        kind["nodes"].add(event["node"])
        node = by_node.setdefault(
            event["node"],
            {"node": event["node"], "op_type": event["op_type"], "provider": event["provider"], "ms": 0.0},
        )
        node["ms"] += event["ms"]
    op_types = [
        {
            "op_type": name,
            "ms": entry["ms"],
            "share": _share(entry["ms"], total),
            "count": len(entry["nodes"]),
        }
        for name, entry in by_type.items()
    ]
    op_types.sort(key=lambda entry: -entry["ms"])
    nodes = sorted(by_node.values(), key=lambda entry: -entry["ms"])[:top]
    for node in nodes:
        node["share"] = _share(node["ms"], total)
    return {
        "total_ms": total,
        # The profiler's own work taken off the median run's nodes (profiler_overhead.py).
        "bookkeeping_ms": sum(event.get("bookkeeping_ms", 0.0) for event in kept),
        "runs": max(runs, len(totals)),
        "op_types": op_types,
        "top_nodes": nodes,
    }


def profile_model(
    path: str | Path, arrays: Mapping[str, np.ndarray], *, threads: int, budget_s: float, warmup_runs: int = 5
) -> dict[str, Any]:
    """Profile `path` on `arrays` (one batch): at least `warmup_runs` left out, then the profiled runs.

    A fast model's profiled runs vary most (on a 35 µs MLP the first twenty runs after five warm-ups
    took 46–57 µs, later ones 35 µs, with the odd slow stretch), so it gets more warm-up and more runs:
    warm-up until MAX_WARMUP_RUNS or a WARMUP_SHARE of the budget, then up to profiled_runs() runs.
    """
    with tempfile.TemporaryDirectory(prefix="profile-") as scratch:
        session = make_session(path, threads, profile_prefix=str(Path(scratch) / "trace"))
        feeds = feeds_for(session, arrays)
        warmed, started = 0, time.perf_counter()
        while warmed < warmup_runs or (
            warmed < MAX_WARMUP_RUNS and time.perf_counter() - started < WARMUP_SHARE * budget_s
        ):
            session.run(None, feeds)
            warmed += 1
        wanted = profiled_runs((time.perf_counter() - started) / warmed)
        runs, started = 0, time.perf_counter()
        while runs < wanted and (runs < 1 or time.perf_counter() - started < budget_s):
            session.run(None, feeds)
            runs += 1
        # Measured on tensors of the model's own rank and batch: on one-element tensors it came out at
        # half what it is on a model's (8, 64) activations.
        shape = calibration_shape(next(iter(feeds.values())).shape)
        bookkeeping = bookkeeping_ms(threads, shape)
        trace = _read_trace(session.end_profiling())
        events = node_events(trace, skip_runs=warmed, bookkeeping=bookkeeping)
    return {
        **aggregate(events, runs),
        "warmup_runs": warmed,
        "profiler_bookkeeping_us": {"per_node": bookkeeping[0] * 1e3, "per_tensor": bookkeeping[1] * 1e3},
        "profiler_calibration_shape": list(shape),
    }


def profiled_runs(seconds_per_run: float) -> int:
    """How many runs to profile: up to MAX_RUNS for a fast model, never fewer than MIN_RUNS.

    onnxruntime keeps every event in memory and writes them as JSON at the end, so the trace is held
    under about MAX_EVENTS node events: a profiled node takes at least a microsecond, so a run of t µs
    has at most t nodes.
    """
    by_events = int(MAX_EVENTS / max(seconds_per_run * 1e6, 1.0))
    return max(MIN_RUNS, min(MAX_RUNS, by_events))


def compare_profiles(
    baseline: dict[str, Any], candidate: dict[str, Any], *, quantized: bool
) -> dict[str, Any]:
    """Both profiles, the per-op-type delta, and the candidate's time in Q/DQ nodes and fp32 fallbacks."""
    before = {entry["op_type"]: entry["ms"] for entry in baseline["op_types"]}
    after = {entry["op_type"]: entry["ms"] for entry in candidate["op_types"]}
    delta = [
        {"op_type": name, "baseline_ms": before.get(name, 0.0), "candidate_ms": after.get(name, 0.0),
         "delta_ms": after.get(name, 0.0) - before.get(name, 0.0)}
        for name in dict.fromkeys([*before, *after])
    ]  # fmt: skip
    delta.sort(key=lambda entry: -abs(entry["delta_ms"]))
    qdq_ms = sum(ms for name, ms in after.items() if name in QDQ_OPS)
    fallback = [entry for entry in candidate["op_types"] if quantized and entry["op_type"] in HAS_INT8_KERNEL]
    fallback_ms = sum(entry["ms"] for entry in fallback)
    total = candidate["total_ms"]
    return {
        "baseline": baseline,
        "candidate": candidate,
        "delta": delta,
        "quantize_dequantize": {"ms": qdq_ms, "share": _share(qdq_ms, total)},
        "fp32_fallback": {
            "ms": fallback_ms,
            "share": _share(fallback_ms, total),
            "op_types": [entry["op_type"] for entry in fallback],
        },
    }


def _read_trace(path: str) -> list[dict[str, Any]]:
    trace_path = Path(path)
    try:
        trace = json.loads(trace_path.read_text("utf-8"))
    finally:
        trace_path.unlink(missing_ok=True)
    return trace if isinstance(trace, list) else []


def _share(part: float, total: float) -> float:
    return part / total if total > 0 else 0.0
