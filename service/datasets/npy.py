"""The one .npy header reader: what an array member of an .npz declares before its data, no pickles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np

from service.errors import InvalidDataset


@dataclass(frozen=True)
class NpyHeader:
    """What an .npy member declares before its data."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool


def read_npy_header(handle: IO[bytes], name: str) -> NpyHeader:
    """Read the magic and header of array `name`, leaving `handle` at its first data byte."""
    try:
        version = np.lib.format.read_magic(handle)
        if version not in {(1, 0), (2, 0)}:
            raise InvalidDataset(f"array '{name}' uses unsupported .npy version {version}", array=name)
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read(handle)
    except ValueError as exc:
        raise InvalidDataset(f"array '{name}' has a broken header: {exc}"[:300], array=name) from exc
    return NpyHeader(np.dtype(dtype), tuple(shape), bool(fortran_order))
