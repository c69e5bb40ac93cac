"""Latency of both models on the GPU through torch (the bridge's modules on CUDA), timed with CUDA events.

The path for a GPU worker without TensorRT (a torch CUDA build is all it needs), and the baseline's
path where onnxruntime has no CUDA provider. Written for torch 2.x's CUDA API; NOT RUN on this
project's CPU machines (see bench/GPU.md); tests/gpu/test_gpu_pool.py runs it where a GPU exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from engine.contract import TechniqueError
from engine.evaluate.benchmark import keep_timing, percentiles, throughput
from service.errors import NoCapableWorker

BACKEND = "torch-cuda (the bridge's torch module; onnxruntime's CUDA provider not used)"


def require_cuda() -> Any:
    """torch, with a CUDA device; a problem when this worker has none (the job landed on a CPU box)."""
    import torch

    if not torch.cuda.is_available():
        raise TechniqueError(
            NoCapableWorker, "evaluation.device is 'cuda' but the worker that took the evaluation has no GPU"
        )
    return torch


def cuda_latency(
    paths: list[Path], batch_sizes: list[int], *, warmup_runs: int, budget_s: float, half: bool = False
) -> dict[str, Any]:
    """Per batch: baseline and candidate interleaved on one GPU; percentiles, throughput, peak memory."""
    torch = require_cuda()
    from engine.bridge import example_inputs, from_onnx

    dtype = torch.float16 if half else torch.float32
    modules = [from_onnx(path).eval().to(device="cuda", dtype=dtype) for path in paths]
    result: dict[str, Any] = {
        "backend": BACKEND,
        "precision": "fp16" if half else "fp32",
        "gpu_name": torch.cuda.get_device_name(0),
        "batches": {},
    }
    with torch.inference_mode():
        for batch in dict.fromkeys(batch_sizes):
            inputs = [t.to(device="cuda", dtype=dtype) for t in example_inputs(modules[0], batch=batch)]
            runs = [partial(module, *inputs) for module in modules]
            latencies, peaks = interleaved(torch, runs, warmup_runs, budget_s)
            result["batches"][str(batch)] = [
                {
                    "latency_ms": percentiles(ms),
                    "throughput_per_s": throughput(ms, batch),
                    "peak_memory_bytes": peak,
                }
                for ms, peak in zip(latencies, peaks, strict=True)
            ]
    return result


def interleaved(
    torch: Any, runs: Sequence[Callable[[], object]], warmup_runs: int, budget_s: float
) -> tuple[list[np.ndarray], list[int]]:
    """Warm both, then alternate who goes first each round; each run timed by its own pair of events.

    Each run must queue its work on torch's current stream, where the events are recorded.
    """
    peaks = []
    for run in runs:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(max(warmup_runs, 1)):
            run()
        torch.cuda.synchronize()
        peaks.append(int(torch.cuda.max_memory_allocated()))
    times: list[list[float]] = [[], []]
    start = time.perf_counter()
    while keep_timing(len(times[0]), time.perf_counter() - start, budget_s):
        order = (0, 1) if len(times[0]) % 2 == 0 else (1, 0)
        for which in order:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            runs[which]()
            end.record()
            end.synchronize()  # the kernels finished: elapsed_time is device time, not launch time
            times[which].append(float(begin.elapsed_time(end)))
    return [np.array(t) for t in times], peaks
