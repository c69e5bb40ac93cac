"""What onnxruntime's profiler adds to each node's kernel time, measured on nodes that do almost no work.

onnxruntime starts a node's clock, runs the kernel, then formats every input's and output's type
and shape, reads its arena's statistics and builds the event's arguments before it stops the clock
(core/framework/session_scope.cc). Each `_kernel_time` span so holds microseconds of profiler work:
on a model of small kernels that made the profile's node time 1.2–1.4× the unprofiled latency.
"""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.evaluate.benchmark import timed_runs_ms
from engine.evaluate.sessions import make_session

# Sum nodes over at most CALIBRATION_ELEMENTS floats: their compute takes a fraction of a microsecond,
# their bookkeeping does not.
CHAIN_NODES = 48
FEW_INPUTS, MANY_INPUTS = 1, 7
RUNS = 40
WARMUP_RUNS = 5
REPEATS = 3
CALIBRATION_ELEMENTS = 4096


@functools.lru_cache(maxsize=8)
def bookkeeping_ms(threads: int, shape: tuple[int, ...]) -> tuple[float, float]:
    """(per node, per input or output tensor) milliseconds the profiler adds inside a node's span.

    Fitted on two chains of Sum nodes over tensors of `shape`, with 1 and with 7 inputs each: how much
    longer a node's mean span is than its share of an unprofiled run of the same chain (which also
    covers the executor's work between kernels, so the node times still add up to the run) gives a
    line in the node's tensor count. Never negative.
    """
    # The median of a few measurements: load during the plain runs lowers the excess, during the
    # profiled ones raises it.
    few = statistics.median(_excess_ms(FEW_INPUTS, threads, shape) for _ in range(REPEATS))
    many = statistics.median(_excess_ms(MANY_INPUTS, threads, shape) for _ in range(REPEATS))
    per_tensor = max((many - few) / (MANY_INPUTS - FEW_INPUTS), 0.0)
    per_node = max(few - per_tensor * (FEW_INPUTS + 1), 0.0)
    return per_node, per_tensor


def calibration_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A concrete input shape with its largest non-batch dimension halved until it holds at most
    CALIBRATION_ELEMENTS (the batch only once the others are down to 1).

    Same rank and batch as the model's input, so the profiler formats shapes like the model's, but
    small enough that copying it costs the chain's nodes next to nothing.
    """
    dims = [max(int(dim), 1) for dim in shape]
    while int(np.prod(dims)) > CALIBRATION_ELEMENTS:
        rest = dims[1:]
        largest = 1 + rest.index(max(rest)) if rest and max(rest) > 1 else 0
        dims[largest] = (dims[largest] + 1) // 2
    return tuple(dims)


def node_tensors(args: dict) -> int:
    """How many input and output tensors a kernel event lists (the profiler formats each one)."""
    count = 0
    for key in ("input_type_shape", "output_type_shape"):
        value = args.get(key) or []
        if isinstance(value, str):  # older onnxruntime versions write the list as a JSON string
            try:
                value = json.loads(value)
            except ValueError:
                value = []
        count += len(value) if isinstance(value, list) else 0
    return count


def _excess_ms(inputs: int, threads: int, shape: tuple[int, ...]) -> float:
    """A Sum node's mean profiled span minus its share of an unprofiled run, in ms."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="bookkeeping-") as scratch:
        path = Path(scratch) / "chain.onnx"
        onnx.save(_chain(inputs, shape), str(path))
        feeds = {"x": np.ones(shape, np.float32)}
        plain = make_session(path, threads)
        timings = timed_runs_ms(functools.partial(plain.run, None, feeds), RUNS, warmup=WARMUP_RUNS)
        profiled = make_session(path, threads, profile_prefix=str(Path(scratch) / "trace"))
        for _ in range(WARMUP_RUNS + RUNS):
            profiled.run(None, feeds)
        trace = json.loads(Path(profiled.end_profiling()).read_text("utf-8"))
    spans = [
        float(event.get("dur", 0)) / 1000.0
        for event in trace
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time")
    ][WARMUP_RUNS * CHAIN_NODES :]
    if not spans:
        return 0.0
    return _trimmed_mean(spans) - statistics.median(timings) / CHAIN_NODES


def _trimmed_mean(values: list[float]) -> float:
    """The mean of the middle 80%.

    Not the median: onnxruntime writes spans in whole microseconds (truncated), so the median of such
    spans moves in steps of a whole microsecond, as large as the bookkeeping it measures, while the
    mean of many spans that jitter keeps a fraction. A model's own spans are truncated alike, so what
    truncation takes off both roughly cancels. The tails go: a preempted node would weigh on it.
    """
    ordered = sorted(values)
    cut = len(ordered) // 10
    kept = ordered[cut : len(ordered) - cut] or ordered
    return sum(kept) / len(kept)


def _chain(inputs: int, shape: tuple[int, ...]) -> Any:
    """CHAIN_NODES Sum nodes in a row over a float tensor of `shape`, each reading `inputs` tensors."""
    from onnx import TensorProto, helper

    nodes, previous = [], "x"
    for index in range(CHAIN_NODES):
        nodes.append(helper.make_node("Sum", [previous, *["x"] * (inputs - 1)], [f"y{index}"]))
        previous = f"y{index}"
    graph = helper.make_graph(
        nodes,
        "profiler_bookkeeping",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, list(shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
