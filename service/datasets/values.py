"""Read an .npy member's values in bounded chunks: refuse non-finite floats, note integer ranges."""

from __future__ import annotations

import math
from typing import IO, Any

import numpy as np

from service.errors import InvalidDataset

CHUNK_BYTES = 1 << 20
# Number-like kinds a model input or a label can be: bool, signed and unsigned integers, floats.
NUMERIC_KINDS = frozenset("biuf")
MAX_FLOAT_BYTES = 8  # float16/32/64; no numpy long double (or complex) reaches an ONNX model


def check_numeric(name: str, dtype: np.dtype) -> None:
    """422 naming an array whose element type is not a plain number (strings, bytes, complex, objects...)."""
    if dtype.hasobject:
        raise InvalidDataset(f"array '{name}' holds Python objects (pickles are refused)", array=name)
    if (
        dtype.kind not in NUMERIC_KINDS
        or dtype.fields is not None
        or dtype.subdtype is not None
        or (dtype.kind == "f" and dtype.itemsize > MAX_FLOAT_BYTES)
    ):
        raise InvalidDataset(
            f"array '{name}' has element type {dtype.str!r}; only bool, integer and float16/32/64 arrays"
            " are accepted",
            array=name,
        )


def data_bytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """How many data bytes an array of this type and shape declares."""
    return math.prod(shape) * dtype.itemsize


def scan_values(handle: IO[bytes], name: str, dtype: np.dtype, shape: tuple[int, ...]) -> dict[str, Any]:
    """Read the array's data from `handle` (after its header) chunk by chunk; never the whole array.

    Raises `InvalidDataset` naming the array when it holds NaN or an infinity, or when its data is
    shorter or longer than its header declares. Returns {"min", "max"} for integer and bool arrays.
    """
    remaining = data_bytes(dtype, shape)
    step = max(1, CHUNK_BYTES // dtype.itemsize) * dtype.itemsize
    low: int | None = None
    high: int | None = None
    while remaining > 0:
        data = handle.read(min(step, remaining))
        if len(data) == 0 or len(data) % dtype.itemsize:
            raise InvalidDataset(f"array '{name}' is shorter than its header declares", array=name)
        remaining -= len(data)
        values = np.frombuffer(data, dtype=dtype)
        if dtype.kind == "f":
            finite = np.isfinite(values)
            if not finite.all():
                first = values[~finite][0]
                raise InvalidDataset(
                    f"array '{name}' holds non-finite values ({first}); replace NaN and infinities before"
                    " uploading",
                    array=name,
                )
        elif values.size:
            low = int(values.min()) if low is None else min(low, int(values.min()))
            high = int(values.max()) if high is None else max(high, int(values.max()))
    if handle.read(1):
        raise InvalidDataset(f"array '{name}' holds more data than its header declares", array=name)
    return {} if low is None else {"min": low, "max": high}
