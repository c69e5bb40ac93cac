"""Evaluation inputs: a user's .npz dataset, or arrays generated from the model's signature."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import DatasetMismatch, InvalidDataset
from service.failures import DatasetRequired
from worker.errortext import brief
from worker.sandbox.contract import TechniqueError

SYMBOLIC_DIM = 16
GENERATED_SAMPLES = 64
MAX_SAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class EvalData:
    """Input arrays keyed by model input name (first axis = samples) and optional labels."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None

    @property
    def samples(self) -> int:
        """How many samples every array holds."""
        return len(next(iter(self.arrays.values())))


def load_eval_data(signature: Mapping[str, Any], dataset_path: str | None) -> EvalData:
    """The dataset's arrays checked against the signature, or generated ones without a dataset."""
    if dataset_path is None:
        return EvalData(generate_inputs(signature, GENERATED_SAMPLES), None)
    return load_dataset(Path(dataset_path), signature)


def load_dataset(path: Path, signature: Mapping[str, Any]) -> EvalData:
    """Load an .npz without pickles; arrays are named after the model inputs, `labels` is optional."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with loaded:
            stored = {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise TechniqueError(
            InvalidDataset, f"the dataset is not a readable .npz file: {brief(error)}"
        ) from None
    arrays = {spec["name"]: _checked(spec, stored) for spec in signature["inputs"]}
    labels = stored.get("labels")
    counts = {name: len(array) for name, array in arrays.items()}
    if labels is not None:
        counts["labels"] = len(labels)
    if len(set(counts.values())) != 1:
        raise TechniqueError(DatasetMismatch, f"arrays hold different numbers of samples: {counts}")
    if min(counts.values()) == 0:
        raise TechniqueError(DatasetMismatch, "the dataset holds no samples")
    keep = slice(0, MAX_SAMPLES)
    return EvalData(
        {name: array[keep] for name, array in arrays.items()}, None if labels is None else labels[keep]
    )


def generate_inputs(signature: Mapping[str, Any], samples: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Standard normal floats, small non-negative integers; symbolic non-batch dims become 16."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in signature["inputs"]:
        if spec["shape"] is None:
            raise TechniqueError(
                DatasetRequired, f"input {spec['name']} has no known rank; provide an evaluation dataset"
            )
        dims = [d if isinstance(d, int) else SYMBOLIC_DIM for d in spec["shape"][1:]]
        shape = (samples, *dims) if spec["shape"] else ()
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
        if shape and isinstance(shape[0], int):
            return int(shape[0])
    return None


def take(arrays: Mapping[str, np.ndarray], start: int, size: int) -> dict[str, np.ndarray]:
    """`size` consecutive samples from `start`, wrapping around when the data is shorter."""
    return {
        name: np.ascontiguousarray(np.take(array, np.arange(start, start + size) % len(array), axis=0))
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
    if shape is not None:
        if array.ndim != len(shape) or array.ndim == 0:
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
