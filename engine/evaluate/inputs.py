"""Evaluation inputs: a user's .npz dataset, or arrays generated from the model's signature."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.contract import TechniqueError
from engine.example_shapes import EXAMPLE_SIZES, Dim, Shape, concrete_shapes, first_runnable, is_fixed
from engine.npz import load_arrays
from service.errors import DatasetMismatch
from service.failures import DatasetRequired

GENERATED_SAMPLES = 64
MAX_SAMPLES = 10_000
SEED = 0
# Runs a model on some arrays (keyed by input name), raising TechniqueError when it cannot.
Probe = Callable[[Mapping[str, np.ndarray]], object]


@dataclass(frozen=True)
class EvalData:
    """Input arrays keyed by model input name (first axis = samples) and optional labels."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None

    @property
    def samples(self) -> int:
        """How many samples every array holds (a scalar input is one value for all of them)."""
        return sample_count(self.arrays)


def sample_count(arrays: Mapping[str, np.ndarray]) -> int:
    """The samples of arrays keyed by input name: the first axis of any but a scalar (one value for all)."""
    return next((len(array) for array in arrays.values() if array.ndim), 1)


def load_eval_data(
    signature: Mapping[str, Any], dataset_path: str | None, probe: Probe | None = None
) -> EvalData:
    """The dataset's arrays checked against the signature, or generated ones without a dataset.

    Generated arrays take the first size of the model's free dims that `probe` runs (the
    bridge's search, engine.example_shapes): a detector's spatial dims must suit its strides.
    """
    if dataset_path is None:
        size = runnable_size(signature, probe) if probe is not None else EXAMPLE_SIZES[0]
        return EvalData(generate_inputs(signature, GENERATED_SAMPLES, size=size), None)
    return load_dataset(Path(dataset_path), signature)


def runnable_size(signature: Mapping[str, Any], probe: Probe) -> int:
    """The size for free non-batch dims at which `probe` (raising TechniqueError) runs the model."""
    specs = _specs(signature)
    batch = fixed_batch(signature) or 1

    def run(shapes: list[Shape]) -> None:
        probe(_arrays(signature, shapes, np.random.default_rng(SEED)))

    return first_runnable(specs, run, (TechniqueError,), batches=(batch,))[1]


def load_dataset(path: Path, signature: Mapping[str, Any]) -> EvalData:
    """Load an .npz without pickles; arrays are named after the model inputs, `labels` is optional."""
    stored = load_arrays(path)
    arrays = {spec["name"]: _checked(spec, stored) for spec in signature["inputs"]}
    labels = stored.get("labels")
    counts = {name: len(array) for name, array in arrays.items() if array.ndim}
    if labels is not None:
        counts["labels"] = len(labels)
    if len(set(counts.values())) != 1:
        raise TechniqueError(DatasetMismatch, f"arrays hold different numbers of samples: {counts}")
    if not any(array.ndim for array in arrays.values()) or min(counts.values()) == 0:
        raise TechniqueError(DatasetMismatch, "the dataset holds no samples")
    return EvalData(first_samples(arrays, MAX_SAMPLES), None if labels is None else labels[:MAX_SAMPLES])


def first_samples(arrays: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The first `count` samples of each array; a scalar input (one value for all) as it is."""
    return {name: array[:count] if array.ndim else array for name, array in arrays.items()}


def generate_inputs(
    signature: Mapping[str, Any], samples: int, seed: int = SEED, size: int = EXAMPLE_SIZES[0]
) -> dict[str, np.ndarray]:
    """`samples` standard normal floats or small non-negative integers; free non-batch dims are `size`."""
    shapes = concrete_shapes(_specs(signature), samples, size)
    return _arrays(
        signature, [(samples, *shape[1:]) if shape else () for shape in shapes], np.random.default_rng(seed)
    )


def _specs(signature: Mapping[str, Any]) -> list[tuple[str, list[Dim]]]:
    for spec in signature["inputs"]:
        if spec["shape"] is None:
            raise TechniqueError(
                DatasetRequired, f"input {spec['name']} has no known rank; provide an evaluation dataset"
            )
    return [(spec["name"], spec["shape"]) for spec in signature["inputs"]]


def _arrays(
    signature: Mapping[str, Any], shapes: list[Shape], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for spec, shape in zip(signature["inputs"], shapes, strict=True):
        dtype = np.dtype(spec["dtype"])
        if dtype.kind == "f":
            arrays[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            arrays[spec["name"]] = rng.integers(0, 2, shape).astype(dtype)
        else:
            arrays[spec["name"]] = rng.integers(0, 8, shape).astype(dtype)
    return arrays


def fixed_batch(signature: Mapping[str, Any]) -> int | None:
    """The batch size the model insists on (an integer first dimension), or None when it is free."""
    for spec in signature["inputs"]:
        shape = spec["shape"]
        if shape and is_fixed(shape[0]):
            return int(shape[0])
    return None


def take(arrays: Mapping[str, np.ndarray], start: int, size: int) -> dict[str, np.ndarray]:
    """`size` consecutive samples from `start`, wrapping around when the data is shorter.

    A scalar input (silero-vad's sample rate) has no samples axis: every batch gets its value.
    """
    return {
        name: np.ascontiguousarray(np.take(array, np.arange(start, start + size) % len(array), axis=0))
        if array.ndim
        else array
        for name, array in arrays.items()
    }


def _checked(spec: Mapping[str, Any], stored: Mapping[str, np.ndarray]) -> np.ndarray:
    name = spec["name"]
    if name not in stored:
        raise TechniqueError(
            DatasetMismatch, f"the dataset has no array named {name!r} (it has {sorted(stored)})"
        )
    array = stored[name]
    shape = spec["shape"]
    if shape == [] and array.ndim != 0:
        raise TechniqueError(
            DatasetMismatch,
            f"model input {name!r} is a scalar: store one value for it (shape ()), used with every sample;"
            f" array {name!r} has shape {array.shape}",
        )
    if shape:
        if array.ndim != len(shape):
            raise TechniqueError(
                DatasetMismatch, f"array {name!r} has shape {array.shape}; the model expects {shape}"
            )
        for axis, dim in enumerate(shape[1:], start=1):
            if isinstance(dim, int) and array.shape[axis] != dim:
                raise TechniqueError(
                    DatasetMismatch, f"array {name!r} has shape {array.shape}; the model expects {shape}"
                )
    dtype = np.dtype(spec["dtype"])
    if array.dtype != dtype:
        if not np.can_cast(array.dtype, dtype, casting="same_kind"):
            raise TechniqueError(
                DatasetMismatch, f"array {name!r} is {array.dtype}; the model expects {dtype}"
            )
        array = array.astype(dtype)
    return array


def batch_elsewhere(signature: Mapping[str, Any]) -> list[str]:
    """Inputs holding the first input's batch dim on another axis than their first, described.

    silero-vad's LSTM state is (2, batch, 128): ModelPress takes samples along every input's first
    axis, so such a model cannot be fed generated or uploaded samples as it is.
    """
    specs = signature["inputs"]
    first = specs[0]["shape"] if specs else None
    if not first or not isinstance(first[0], str):
        return []
    batch = first[0]
    return [
        f"{spec['name']} (axis {spec['shape'].index(batch)} of {spec['shape']})"
        for spec in specs[1:]
        if spec["shape"] and spec["shape"][0] != batch and batch in spec["shape"]
    ]


def explained(error: TechniqueError, signature: Mapping[str, Any]) -> TechniqueError:
    """`error` with the reason a model did not run on its samples, when its batch is off the first axis."""
    elsewhere = batch_elsewhere(signature)
    if error.slug != "model-not-runnable" or not elsewhere:
        return error
    return TechniqueError(
        type(error.problem),
        f"{error.problem.detail}; the batch dim '{signature['inputs'][0]['shape'][0]}' sits on another axis"
        f" than the first in {', '.join(elsewhere)}, and samples are taken along every input's first"
        " axis: export the model with the batch first in every input (a wrapper that transposes the"
        " state in and out)",
        **error.problem.extensions,
    )
