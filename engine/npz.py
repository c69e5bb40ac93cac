"""Reading an uploaded .npz without pickles: headers first, then rows in order, never a whole array."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from engine.contract import TechniqueError
from engine.errortext import brief
from service.errors import InvalidDataset


@dataclass(frozen=True)
class NpyHeader:
    """What an .npy member declares before its data."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool


def open_member(archive: zipfile.ZipFile, name: str) -> tuple[IO[bytes], NpyHeader]:
    """Open one array of the archive, positioned at its first data byte (decompressed as read)."""
    stream = archive.open(f"{name}.npy")
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise TechniqueError(InvalidDataset, f"array '{name}' uses unsupported .npy version {version}")
    return stream, NpyHeader(np.dtype(dtype), tuple(shape), bool(fortran_order))


def read_headers(npz_path: Path) -> dict[str, NpyHeader]:
    """Name, dtype and shape of every array in an .npz, read without loading any data."""
    headers = {}
    try:
        with zipfile.ZipFile(npz_path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    stream, headers[member[:-4]] = open_member(archive, member[:-4])
                    stream.close()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise TechniqueError(
            InvalidDataset, f"the dataset is not a readable .npz file: {brief(exc)}"
        ) from exc
    return headers


def read_rows(stream: IO[bytes], header: NpyHeader, name: str, count: int) -> np.ndarray:
    """The next `count` rows (samples) of one array, in its stored dtype."""
    row_shape = header.shape[1:]
    size = count * header.dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    data = stream.read(size)
    if len(data) != size:
        raise TechniqueError(InvalidDataset, f"array '{name}' is truncated")
    return np.frombuffer(data, dtype=header.dtype).reshape((count, *row_shape))
