"""onnxruntime sessions configured the same way for every model that is measured."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from engine.contract import TechniqueError
from engine.errortext import brief
from engine.evaluate.inputs import sample_count, take
from service.failures import ModelNotRunnable, SignatureMismatch

PROVIDER = "CPUExecutionProvider"
CHUNK = 64

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def make_session(
    path: str | Path, threads: int, *, profile_prefix: str | None = None
) -> ort.InferenceSession:
    """A CPU session with a fixed intra-op thread count, one inter-op thread, sequential execution.

    `profile_prefix` turns on onnxruntime's profiler, writing its trace to a file with that prefix.
    """
    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # Interleaved timing: a spinning idle session would steal the cores of the one being timed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=[PROVIDER])
    except Exception as error:  # onnxruntime raises several unrelated exception types here
        raise TechniqueError(
            ModelNotRunnable, f"onnxruntime cannot load {Path(path).name}: {brief(error)}"
        ) from None


def feeds_for(session: ort.InferenceSession, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a session needs, cast to the element type it declares (e.g. a float16 candidate)."""
    feeds: dict[str, np.ndarray] = {}
    for meta in session.get_inputs():
        if meta.name not in arrays:
            raise TechniqueError(
                SignatureMismatch, f"the model wants an input named {meta.name!r}; have {sorted(arrays)}"
            )
        wanted = _ORT_TYPES.get(meta.type)
        array = arrays[meta.name]
        feeds[meta.name] = array if wanted is None or array.dtype == wanted else array.astype(wanted)
    return feeds


def run_checked(
    session: ort.InferenceSession, arrays: Mapping[str, np.ndarray], *, quiet: bool = False
) -> list[Any]:
    """One run on `arrays`; a model onnxruntime cannot run on them is 'model-not-runnable'.

    `quiet` keeps onnxruntime from logging the failure: probing sizes expects some to fail.
    """
    feeds = feeds_for(session, arrays)
    options = ort.RunOptions()
    if quiet:
        options.log_severity_level = 4  # fatal only
    try:
        outputs: list[Any] = session.run(None, feeds, options)
    except Exception as error:  # onnxruntime raises several unrelated exception types here
        raise TechniqueError(ModelNotRunnable, f"onnxruntime cannot run the model: {brief(error)}") from None
    return outputs


def first_output(session: ort.InferenceSession, arrays: Mapping[str, np.ndarray], chunk: int) -> np.ndarray:
    """The first output over every sample, run `chunk` samples at a time (float64)."""
    return all_outputs(session, arrays, chunk)[0]


def all_outputs(
    session: ort.InferenceSession, arrays: Mapping[str, np.ndarray], chunk: int
) -> list[np.ndarray]:
    """Every output over every sample, run `chunk` samples at a time (float64), in the model's order.

    An output whose chunks cannot be joined along the sample axis (a scalar, or a per-batch count)
    is returned as its first chunk's value.
    """
    samples = sample_count(arrays)
    parts: list[list[np.ndarray]] = []
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        outputs = run_checked(session, take(arrays, start, chunk if _needs_full(session) else size))
        for index, output in enumerate(outputs):
            if len(parts) <= index:
                parts.append([])
            value = np.asarray(output)
            if value.dtype.kind not in "biuf":
                continue  # strings or maps: nothing to compare numerically
            value = value.astype(np.float64)
            parts[index].append(value[:size] if value.ndim else value)
    joined: list[np.ndarray] = []
    for chunks in parts:
        if not chunks:
            joined.append(np.empty(0))
            continue
        try:
            joined.append(np.concatenate(chunks))
        except ValueError:
            joined.append(chunks[0])
    return joined


def _needs_full(session: ort.InferenceSession) -> bool:
    """True when the model's batch dimension is a fixed number, so every chunk must be full."""
    return any(meta.shape and isinstance(meta.shape[0], int) for meta in session.get_inputs())
