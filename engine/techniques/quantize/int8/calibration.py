"""Streaming calibration data: batches read row by row from an uploaded .npz, checked against the model."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from engine.contract import TechniqueError
from engine.npz import NpyHeader, open_member, read_headers, read_rows
from service.errors import DatasetMismatch, InvalidDataset
from service.failures import UnsupportedInput

LABELS = "labels"
_KINDS = {"f": "f", "i": "iu", "u": "iu", "b": "b"}


@dataclass(frozen=True)
class ModelInput:
    """One graph input: name, element type and dims (int when fixed, a name when symbolic)."""

    name: str
    dtype: np.dtype
    dims: tuple[int | str, ...] | None


def model_inputs(model_path: Path) -> list[ModelInput]:
    """The graph inputs a caller must feed (initializers excluded), without loading weights."""
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {tensor.name for tensor in model.graph.initializer}
    found = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise TechniqueError(UnsupportedInput, f"model input '{value.name}' is not a tensor")
        tensor = value.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        dims = None
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in tensor.shape.dim)
        found.append(ModelInput(value.name, dtype, dims))
    return found


def _shape_text(dims: Sequence[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _check_array(expected: ModelInput, header: NpyHeader) -> None:
    """Raise dataset-mismatch when one array cannot feed its model input."""
    name, shape = expected.name, header.shape
    if header.dtype.kind not in _KINDS.get(expected.dtype.kind, expected.dtype.kind) or not np.can_cast(
        header.dtype, expected.dtype, "same_kind"
    ):
        raise TechniqueError(
            DatasetMismatch,
            f"array '{name}' is {header.dtype} but model input '{name}' expects {expected.dtype}",
        )
    if expected.dims is None:
        return
    wanted = _shape_text(expected.dims)
    if len(expected.dims) == 0 and len(shape) != 0:
        raise TechniqueError(
            DatasetMismatch,
            f"model input '{name}' is a scalar: store one value for it (shape ()), used with every"
            f" sample; array '{name}' has shape {shape}",
        )
    if len(shape) != len(expected.dims):
        raise TechniqueError(
            DatasetMismatch,
            f"array '{name}' has shape {shape} but model input '{name}' has shape {wanted}; "
            "the array needs the same axes, with samples along the first",
        )
    for axis, (have, want) in enumerate(zip(shape[1:], expected.dims[1:], strict=True), start=1):
        if isinstance(want, int) and have != want:
            raise TechniqueError(
                DatasetMismatch,
                f"array '{name}' has {have} along axis {axis} (shape {shape}) but model input '{name}' "
                f"expects {want} (shape {wanted})",
            )


def check_dataset(headers: dict[str, NpyHeader], inputs: Sequence[ModelInput]) -> int:
    """Check that the arrays can feed the model's inputs; returns the number of samples."""
    for name, header in headers.items():
        if header.dtype.hasobject:
            raise TechniqueError(InvalidDataset, f"array '{name}' holds Python objects, which are refused")
    names = [expected.name for expected in inputs]
    unknown = sorted(set(headers) - set(names) - {LABELS})
    if unknown:
        raise TechniqueError(
            DatasetMismatch,
            f"array '{unknown[0]}' is not an input of the model (inputs: {', '.join(names)})",
        )
    counts = {}
    for expected in inputs:
        if expected.name not in headers:
            raise TechniqueError(
                DatasetMismatch,
                f"the dataset has no array '{expected.name}' for the model input of that name "
                f"(arrays: {', '.join(sorted(headers)) or 'none'})",
            )
        header = headers[expected.name]
        _check_array(expected, header)
        if header.fortran_order and len(header.shape) > 1:
            raise TechniqueError(
                InvalidDataset,
                f"array '{expected.name}' is stored in Fortran order; save np.ascontiguousarray(...)",
            )
        if header.shape:  # a scalar is one value for every sample
            counts[expected.name] = header.shape[0]
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"'{name}' has {count}" for name, count in counts.items())
        raise TechniqueError(DatasetMismatch, f"arrays disagree on the number of samples: {detail}")
    samples = next(iter(counts.values()), 0)
    if samples == 0:
        raise TechniqueError(DatasetMismatch, f"array '{names[0] if names else '?'}' has no samples")
    return samples


def sample_shapes(npz_path: Path) -> dict[str, tuple[int, ...]]:
    """Each array's shape without its first (samples) axis, read from the headers only."""
    return {name: header.shape[1:] for name, header in read_headers(npz_path).items() if header.shape}


class NpzCalibrationReader(CalibrationDataReader):
    """Feeds onnxruntime's calibrator evenly spaced samples of an .npz, one batch in memory at a time."""

    def __init__(
        self, npz_path: Path, inputs: Sequence[ModelInput], *, batch_size: int, max_samples: int
    ) -> None:
        self._path = npz_path
        headers = read_headers(npz_path)
        self._total = check_dataset(headers, inputs)
        # Scalar inputs (silero-vad's sample rate) go with every batch as they are.
        self._inputs = [e for e in inputs if headers[e.name].shape]
        scalars = [e for e in inputs if not headers[e.name].shape]
        with np.load(npz_path, allow_pickle=False) as stored:
            self._scalars = {e.name: np.asarray(stored[e.name], dtype=e.dtype) for e in scalars}
        fixed = {e.dims[0] for e in self._inputs if e.dims and isinstance(e.dims[0], int)}
        if len(fixed) > 1:
            raise TechniqueError(
                DatasetMismatch, f"model inputs have different fixed batch sizes {sorted(fixed)}"
            )
        self.batch_size = int(next(iter(fixed))) if fixed else batch_size
        self.samples = min(self._total, max_samples)
        if fixed:
            # A fixed batch axis takes only whole batches.
            self.samples -= self.samples % self.batch_size
        if self.samples == 0:
            raise TechniqueError(
                DatasetMismatch,
                f"the dataset has {self._total} samples, fewer than the model's batch {self.batch_size}",
            )
        self.rewind()

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._batches = self._generate()
        self._delivered = 0
        self._stop = len(self)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Deliver batches [start_index, end_index) next (used by onnxruntime's strided calibration)."""
        if start_index < self._delivered:
            self.rewind()
        while self._delivered < start_index and next(self._batches, None) is not None:
            self._delivered += 1
        self._stop = end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as {input name: array}, or None at the end of the range."""
        if self._delivered >= self._stop:
            return None
        batch = next(self._batches, None)
        if batch is not None:
            self._delivered += 1
        return batch

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        wanted = np.arange(self.samples, dtype=np.int64) * self._total // self.samples
        last = int(wanted[-1]) + 1
        pending: dict[str, list[np.ndarray]] = {e.name: [] for e in self._inputs}
        held = 0
        with zipfile.ZipFile(self._path) as archive:
            streams = {e.name: open_member(archive, e.name) for e in self._inputs}
            for start in range(0, last, self.batch_size):
                stop = min(start + self.batch_size, last)
                chosen = wanted[(wanted >= start) & (wanted < stop)] - start
                for name, (stream, header) in streams.items():
                    rows = read_rows(stream, header, name, stop - start)
                    pending[name].append(rows[chosen])
                held += chosen.size
                while held >= self.batch_size or (held and stop == last):
                    count = min(held, self.batch_size)
                    yield {
                        **{e.name: self._take(pending[e.name], count, e.dtype) for e in self._inputs},
                        **self._scalars,
                    }
                    held -= count

    @staticmethod
    def _take(parts: list[np.ndarray], count: int, dtype: np.dtype) -> np.ndarray:
        joined = np.concatenate(parts)
        parts[:] = [joined[count:]]
        return np.ascontiguousarray(joined[:count], dtype=dtype)
