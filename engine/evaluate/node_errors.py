"""Per-node error report: where a quantized model's intermediate outputs drift from the float model's.

Both models run a few samples with every matched intermediate tensor exposed as an output, as
onnxruntime.quantization.qdq_loss_debug does. Exposing the tensors keeps onnxruntime from fusing a
QDQ model into int8 kernels, so its simulated (float) path is what is compared; the two round alike
up to a unit of the last quantized digit.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from engine.evaluate.inputs import sample_count, take
from engine.evaluate.sessions import feeds_for, make_session
from engine.evaluate.tensor_match import Source, candidate_reads, match_tensors, owners

MAX_SAMPLES = 8
TOP_NODES = 10
# Protobuf cannot serialize past 2 GiB; larger models are not reported on.
_MAX_PROTO_BYTES = 1_900_000_000


@dataclass(frozen=True)
class TensorError:
    """Mean cosine similarity and relative L2 error (‖q − f‖ / ‖f‖) of one tensor over the runs."""

    cosine: float
    relative_error: float


@dataclass(frozen=True)
class NodeError:
    """A node's worst output error, and how much of it the node added beyond its worst input's."""

    node: str
    op_type: str
    cosine: float
    relative_error: float
    added_error: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-able entry; non-finite figures (an overflow in the candidate) become None."""
        figures = {"cosine": self.cosine, "relative_error": self.relative_error}
        figures["added_error"] = self.added_error
        return {
            "node": self.node,
            "op_type": self.op_type,
            **{key: value if math.isfinite(value) else None for key, value in figures.items()},
        }


def node_errors(
    baseline: onnx.ModelProto,
    candidate: onnx.ModelProto,
    arrays: Mapping[str, np.ndarray],
    *,
    threads: int,
    budget_s: float,
    top: int = TOP_NODES,
) -> list[dict[str, Any]] | None:
    """The `top` nodes whose outputs diverge most, worst first; None when nothing could be compared."""
    errors = measure_nodes(baseline, candidate, arrays, threads=threads, budget_s=budget_s)
    if errors is None:
        return None
    ranked = sorted(errors, key=lambda error: _descending(error.relative_error))
    return [error.as_dict() for error in ranked[:top]]


def measure_nodes(
    baseline: onnx.ModelProto,
    candidate: onnx.ModelProto,
    arrays: Mapping[str, np.ndarray],
    *,
    threads: int,
    budget_s: float,
    samples: int = MAX_SAMPLES,
) -> list[NodeError] | None:
    """Every matched node's error, in graph order; runs stop once `budget_s` is spent (one always runs)."""
    sources = match_tensors(baseline, candidate)
    if not sources or max(baseline.ByteSize(), candidate.ByteSize()) > _MAX_PROTO_BYTES:
        return None
    tensors = _tensor_errors(baseline, candidate, sources, arrays, threads, budget_s, samples)
    owned = owners(baseline, candidate, {name: sources[name] for name in tensors})
    nodes = {node.name: node for node in baseline.graph.node if node.name}
    grouped: dict[str, list[TensorError]] = {}
    for tensor, owner in owned.items():
        grouped.setdefault(owner, []).append(tensors[tensor])
    found = []
    for name, node in nodes.items():
        if name not in grouped:
            continue
        worst = max(grouped[name], key=lambda error: _ascending(error.relative_error))
        inputs = [tensors[tensor].relative_error for tensor in node.input if tensor in tensors]
        added = worst.relative_error - max(inputs, default=0.0)
        found.append(NodeError(name, node.op_type, worst.cosine, worst.relative_error, max(added, 0.0)))
    return found


def _tensor_errors(
    baseline: onnx.ModelProto,
    candidate: onnx.ModelProto,
    sources: dict[str, Source],
    arrays: Mapping[str, np.ndarray],
    threads: int,
    budget_s: float,
    samples: int,
) -> dict[str, TensorError]:
    reads = candidate_reads(sources, candidate)
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in candidate.graph.initializer}
    totals: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="node-errors-") as scratch:
        float_session = _exposing(baseline, list(sources), Path(scratch) / "float.onnx", threads)
        quant_session = _exposing(candidate, reads, Path(scratch) / "candidate.onnx", threads)
        batch = _batch(float_session)
        started = time.perf_counter()
        for start in range(0, max(1, min(samples, sample_count(arrays))), batch):
            feeds = take(arrays, start, batch)
            floats = dict(
                zip(sources, float_session.run(list(sources), feeds_for(float_session, feeds)), strict=True)
            )
            values = dict(zip(reads, quant_session.run(reads, feeds_for(quant_session, feeds)), strict=True))
            for name, source in sources.items():
                got = _read(source, values, weights)
                reference = np.asarray(floats[name])
                if got is not None and reference.dtype.kind == "f" and got.shape == reference.shape:
                    totals[name] = totals.get(name, np.zeros(3)) + (*_compare(reference, got), 1.0)
            if time.perf_counter() - started > budget_s:
                break
    return {name: TensorError(sums[0] / sums[2], sums[1] / sums[2]) for name, sums in totals.items()}


def _exposing(model: onnx.ModelProto, names: list[str], path: Path, threads: int) -> ort.InferenceSession:
    """A session whose outputs include `names`; the model is restored before returning."""
    present = {value.name for value in model.graph.output}
    extra = [name for name in names if name not in present]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in extra)
    try:
        onnx.save(model, str(path))
    finally:
        del model.graph.output[len(model.graph.output) - len(extra) :]
    return make_session(path, threads)


def _batch(session: ort.InferenceSession) -> int:
    """The model's fixed batch size, else one sample per run (bounding the tensors held at once)."""
    for meta in session.get_inputs():
        if meta.shape and isinstance(meta.shape[0], int):
            return int(meta.shape[0])
    return 1


def _read(source: Source, values: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The candidate's value of the tensor, dequantized when it is held as integers."""
    held = np.asarray(values[source.tensor])
    if source.scale is None or source.zero_point is None:
        return held
    scale = np.asarray(values.get(source.scale, weights.get(source.scale)))
    zero = np.asarray(values.get(source.zero_point, weights.get(source.zero_point)))
    if scale.size != 1 or zero.size != 1:
        return None
    return (held.astype(np.float64) - float(zero.reshape(()))) * float(scale.reshape(()))


def _compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Cosine similarity and relative L2 error of two tensors, flattened."""
    a = reference.astype(np.float64).ravel()
    b = candidate.astype(np.float64).ravel()
    if not np.all(np.isfinite(b)):
        return 0.0, math.inf
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    relative = float(np.linalg.norm(a - b)) / norm_a if norm_a > 0 else (0.0 if norm_b == 0 else 1.0)
    if norm_a > 0 and norm_b > 0:
        return float(np.dot(a, b)) / (norm_a * norm_b), relative
    # Two all-zero tensors agree perfectly; one all-zero tensor has no direction to agree with.
    return (1.0 if norm_a == norm_b else 0.0), relative


def _descending(value: float) -> float:
    return -value if not math.isnan(value) else math.inf


def _ascending(value: float) -> float:
    return value if not math.isnan(value) else -math.inf
