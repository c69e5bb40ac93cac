"""Read an .npz's array headers without loading data or pickles, and check it against a model."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import DatasetMismatch, InvalidDataset

MAX_ARRAYS = 64
LABELS = "labels"


def read_npz_headers(path: Path) -> dict[str, dict[str, Any]]:
    """{array name: {dtype, shape}} from each member's .npy header; refuses object arrays."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InvalidDataset("the file is not an .npz archive (a zip of .npy arrays)") from exc
    arrays: dict[str, dict[str, Any]] = {}
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise InvalidDataset(
                f"the archive holds {len(members)} members; at most {MAX_ARRAYS} are allowed"
            )
        for member in members:
            if not member.filename.endswith(".npy") or "/" in member.filename:
                raise InvalidDataset(f"member '{member.filename}' is not a top-level .npy array")
            with archive.open(member) as handle:
                try:
                    version = np.lib.format.read_magic(handle)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(handle)
                except ValueError as exc:
                    raise InvalidDataset(f"array '{member.filename}' has a broken header: {exc}") from exc
            if dtype.hasobject:
                raise InvalidDataset(
                    f"array '{member.filename[:-4]}' holds Python objects (pickles are refused)"
                )
            arrays[member.filename[:-4]] = {"dtype": dtype.name, "shape": list(shape)}
    if not arrays:
        raise InvalidDataset("the archive holds no arrays")
    return arrays


def count_samples(arrays: dict[str, dict[str, Any]]) -> int:
    """Every array shares its first axis (samples); return that length."""
    scalars = [name for name, spec in arrays.items() if not spec["shape"]]
    if scalars:
        raise InvalidDataset(f"array '{scalars[0]}' is a scalar; every array needs a first (sample) axis")
    lengths = {name: int(spec["shape"][0]) for name, spec in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidDataset(f"arrays disagree on the number of samples: {lengths}")
    return next(iter(lengths.values()))


def check_against_signature(arrays: dict[str, dict[str, Any]], signature: dict[str, Any]) -> None:
    """422 naming the array that does not fit the model's inputs (name, dtype or shape)."""
    inputs = {spec["name"]: spec for spec in signature.get("inputs", [])}
    missing = sorted(set(inputs) - set(arrays))
    if missing:
        raise DatasetMismatch(f"the dataset lacks arrays for model inputs {missing}", expected=sorted(inputs))
    extra = sorted(set(arrays) - set(inputs) - {LABELS})
    if extra:
        raise DatasetMismatch(f"arrays {extra} match no model input (inputs are {sorted(inputs)})")
    for name, spec in inputs.items():
        array = arrays[name]
        if array["dtype"] != spec["dtype"]:
            raise DatasetMismatch(f"array '{name}' is {array['dtype']}; the model expects {spec['dtype']}")
        expected, actual = spec["shape"], array["shape"]
        if len(expected) != len(actual):
            raise DatasetMismatch(
                f"array '{name}' has shape {actual}; the model expects rank {len(expected)} {expected}"
            )
        for axis, (want, got) in enumerate(zip(expected, actual, strict=True)):
            if axis > 0 and isinstance(want, int) and want != got:
                raise DatasetMismatch(f"array '{name}' has shape {actual}; the model expects {expected}")
