"""Read an .npz's array headers without loading data or pickles, and check it against a model."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from service.datasets.npy import read_npy_header
from service.datasets.values import check_numeric, scan_values
from service.errors import DatasetMismatch, InvalidDataset

MAX_ARRAYS = 64
# Compressed members are inflated to be scanned: bound the work a small file can ask for.
MAX_INFLATION = 100
MAX_INFLATION_SLACK = 64 * 1024**2
MAX_INFLATED_BYTES = 16 * 1024**3
LABELS = "labels"


def read_npz_headers(source: Path | BinaryIO, *, scan: bool = False) -> dict[str, dict[str, Any]]:
    """{array name: {dtype, shape}} from each member's .npy header; refuses non-numeric arrays.

    With `scan`, every value is read too, chunk by chunk (service/datasets/values.py): non-finite
    floats are refused, and integer arrays record their "min" and "max".
    """
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise InvalidDataset("the file is not an .npz archive (a zip of .npy arrays)") from exc
    arrays: dict[str, dict[str, Any]] = {}
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise InvalidDataset(
                f"the archive holds {len(members)} members; at most {MAX_ARRAYS} are allowed"
            )
        _check_expansion(members, _size(source))
        for member in members:
            if not member.filename.endswith(".npy") or "/" in member.filename:
                raise InvalidDataset(f"member '{member.filename}' is not a top-level .npy array")
            name = member.filename[:-4]
            try:
                with archive.open(member) as handle:
                    header = read_npy_header(handle, name)
                    shape, dtype = header.shape, header.dtype
                    check_numeric(name, dtype)
                    arrays[name] = {"dtype": dtype.name, "shape": list(shape)}
                    if scan:
                        arrays[name].update(scan_values(handle, name, dtype, shape))
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise InvalidDataset(
                    f"array '{name}' cannot be read (a damaged archive)", array=name
                ) from exc
    if not arrays:
        raise InvalidDataset("the archive holds no arrays")
    return arrays


def _size(source: Path | BinaryIO) -> int:
    """The archive's size in bytes, of a path or of a seekable file."""
    if isinstance(source, Path):
        return source.stat().st_size
    return source.seek(0, os.SEEK_END)


def _check_expansion(members: list[zipfile.ZipInfo], file_bytes: int) -> None:
    """Refuse an archive whose members inflate far past the upload (a zip bomb) before reading any."""
    inflated = sum(member.file_size for member in members)
    if inflated > MAX_INFLATED_BYTES or inflated > MAX_INFLATION * file_bytes + MAX_INFLATION_SLACK:
        raise InvalidDataset(
            f"the arrays inflate to {inflated} bytes from a {file_bytes}-byte file; at most"
            f" {MAX_INFLATION}x and {MAX_INFLATED_BYTES} bytes are accepted"
        )


def count_samples(arrays: dict[str, dict[str, Any]]) -> int:
    """Every array but a scalar shares its first axis (samples); return that length.

    A scalar is one value for every sample, for a model input that is a scalar (silero-vad's
    sample rate); at least one array holds samples.
    """
    if LABELS in arrays and not arrays[LABELS]["shape"]:
        raise InvalidDataset("'labels' is a scalar; labels need one entry per sample")
    lengths = {name: int(spec["shape"][0]) for name, spec in arrays.items() if spec["shape"]}
    if not lengths:
        raise InvalidDataset("every array is a scalar; at least one needs a first (sample) axis")
    if len(set(lengths.values())) != 1:
        raise InvalidDataset(f"arrays disagree on the number of samples: {lengths}")
    return next(iter(lengths.values()))


def check_against_signature(arrays: dict[str, dict[str, Any]], signature: dict[str, Any]) -> None:
    """422 naming the array that does not fit the model's inputs (name, dtype or shape)."""
    if signature.get("decoder") is not None:
        check_token_dataset(arrays, signature["decoder"])
        return
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


TOKEN_ARRAYS = ("input_ids", "attention_mask")


def check_token_dataset(arrays: dict[str, dict[str, Any]], decoder: dict[str, Any]) -> None:
    """A language model's dataset: integer `input_ids` (sequences, length), optional `attention_mask`.

    The cache and position inputs are the evaluator's to build, so the dataset holds only tokens.
    """
    if "input_ids" not in arrays:
        raise DatasetMismatch(
            "a language model's dataset needs an 'input_ids' array of token ids", expected=list(TOKEN_ARRAYS)
        )
    extra = sorted(set(arrays) - {*TOKEN_ARRAYS, LABELS})
    if extra:
        raise DatasetMismatch(
            f"arrays {extra} are not token arrays (a language model's dataset holds {list(TOKEN_ARRAYS)})"
        )
    ids = arrays["input_ids"]
    if np.dtype(ids["dtype"]).kind not in "iu" or len(ids["shape"]) != 2 or ids["shape"][1] < 2:
        raise DatasetMismatch(
            f"input_ids is {ids['dtype']} {ids['shape']}; token ids must be integers shaped"
            " (sequences, length >= 2)"
        )
    mask = arrays.get("attention_mask")
    if mask is not None and list(mask["shape"]) != list(ids["shape"]):
        raise DatasetMismatch(f"attention_mask has shape {mask['shape']}; input_ids has {ids['shape']}")
    vocab = decoder.get("vocab_size")
    if vocab and "max" in ids and (ids["min"] < 0 or ids["max"] >= vocab):
        raise DatasetMismatch(
            f"token ids range from {ids['min']} to {ids['max']}; the model's vocabulary has {vocab} tokens"
        )
