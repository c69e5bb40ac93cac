"""Whether two graphs compute the same outputs on example inputs of the model's signature."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from engine.evaluate.inputs import fixed_batch, generate_inputs
from engine.example_shapes import EXAMPLE_SIZES, concrete_shapes, has_free_dims

# The bar: identical up to float rounding, relative to outputs larger than 1.
TOLERANCE = 1e-5
FREE_BATCH = 2
# Generated inputs stop growing here (64 Mi values): a 3-D volume at 640 would be gigabytes.
MAX_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class Verdict:
    """`problem` says why the graphs are not known to agree; None when they agree."""

    problem: str | None
    max_abs_difference: float | None = None


def compare_outputs(
    original: onnx.ModelProto, candidate: onnx.ModelProto, signature: Mapping[str, Any]
) -> Verdict:
    """Run both with onnxruntime (graph optimizations off) and compare every output.

    Free dims take the first of the evaluator's example sizes at which the original runs (a voice
    detector needs a 512-sample window; a detector, multiples of 32).
    """
    try:
        original_session = _session(original)
    except Exception:  # onnxruntime raises several types
        original_session = None
    found = None if original_session is None else _first_run(original_session, signature)
    if found is None:
        return Verdict(
            "the uploaded model does not run on generated inputs, so the result could not be checked"
        )
    inputs, wanted = found
    try:
        candidate_session = _session(candidate)
        got = candidate_session.run(None, _feeds(candidate_session, inputs))
    except Exception as error:  # onnxruntime raises several unrelated types
        return Verdict(f"the normalized graph does not run: {error}"[:500])
    worst = 0.0
    for index, (want, have) in enumerate(zip(wanted, got, strict=True)):
        difference = _difference(np.asarray(want), np.asarray(have))
        if difference is None:
            return Verdict(f"output {index} of the normalized graph changed shape, type or non-finite values")
        if difference > TOLERANCE * max(1.0, float(np.nanmax(np.abs(want), initial=0.0))):
            return Verdict(f"output {index} of the normalized graph differs by {difference:.3g}", difference)
        worst = max(worst, difference)
    return Verdict(None, worst)


def _first_run(session: Any, signature: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], list[Any]] | None:
    """Generated inputs at the first example size the session runs, and its outputs; None if none runs."""
    batch = fixed_batch(signature) or FREE_BATCH
    specs = [(spec["name"], spec["shape"] or []) for spec in signature["inputs"]]
    for size in EXAMPLE_SIZES if has_free_dims(specs) else EXAMPLE_SIZES[:1]:
        if sum(math.prod(shape) for shape in concrete_shapes(specs, batch, size)) > MAX_ELEMENTS:
            break  # a volume at this size would take gigabytes, and larger sizes more
        try:
            inputs = generate_inputs(signature, batch, size=size)
            return inputs, session.run(None, _feeds(session, inputs))
        except MemoryError:
            break
        except Exception:  # onnxruntime raises several types; the next size may run
            continue
    return None


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Compare the graphs as written: runtime fusions would add their own rounding to both sides.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _feeds(session: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Old IR versions list initializers as inputs too: those keep their stored values.
    return {meta.name: inputs[meta.name] for meta in session.get_inputs() if meta.name in inputs}


def _difference(want: np.ndarray, have: np.ndarray) -> float | None:
    """Max abs difference over finite values; None when shape, dtype or non-finite positions differ."""
    if want.shape != have.shape or want.dtype != have.dtype:
        return None
    if want.dtype.kind not in "fc":
        return 0.0 if np.array_equal(want, have) else float("inf")
    finite = np.isfinite(want)
    if not np.array_equal(finite, np.isfinite(have)) or not np.array_equal(
        want[~finite], have[~finite], equal_nan=True
    ):
        return None
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(want[finite].astype(np.float64) - have[finite].astype(np.float64))))
