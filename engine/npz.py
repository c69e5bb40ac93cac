"""Reading an uploaded .npz without pickles: headers first, then rows in order, or whole arrays.

Every reader of a dataset in the engine comes here; the .npy header itself is parsed by
service/datasets/npy.py, the same code the API checks uploads with.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from engine.contract import TechniqueError
from engine.errortext import brief
from service.datasets.npy import NpyHeader, read_npy_header
from service.errors import InvalidDataset, Problem

__all__ = ["NpyHeader", "load_arrays", "open_member", "read_headers", "read_rows"]


def open_member(archive: zipfile.ZipFile, name: str) -> tuple[IO[bytes], NpyHeader]:
    """Open one array of the archive, positioned at its first data byte (decompressed as read)."""
    stream = archive.open(f"{name}.npy")
    try:
        return stream, read_npy_header(stream, name)
    except Problem as problem:
        stream.close()
        raise TechniqueError.carrying(problem) from None


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
        raise _unreadable(exc) from exc
    return headers


def read_rows(stream: IO[bytes], header: NpyHeader, name: str, count: int) -> np.ndarray:
    """The next `count` rows (samples) of one array, in its stored dtype."""
    row_shape = header.shape[1:]
    size = count * header.dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    data = stream.read(size)
    if len(data) != size:
        raise TechniqueError(InvalidDataset, f"array '{name}' is truncated")
    return np.frombuffer(data, dtype=header.dtype).reshape((count, *row_shape))


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz by name, loaded whole (evaluation and training sets are bounded)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: BaseException) -> TechniqueError:
    return TechniqueError(InvalidDataset, f"the dataset is not a readable .npz file: {brief(exc)}")
