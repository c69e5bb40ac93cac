"""ONNX external data: every location checked before any library opens a file it names.

External data has a history of path-traversal CVEs (relative `..`, absolute paths, symlinks,
hard links), so the checks do not rely on onnx's own: the location must be a plain relative path
whose every component exists inside the model's folder, is not a link, and ends at a regular file
with a single link that is long enough for the declared offset and length.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import onnx

from engine.contract import TechniqueError
from engine.evaluate.parameters import iter_graphs
from engine.ingest.safety import iter_nodes
from service.failures import UnsafeModel

_KEYS = frozenset({"location", "offset", "length", "checksum"})
_DRIVE = re.compile(r"^[A-Za-z]:")


def external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the model (initializers, sparse parts, attributes) stored outside the file."""
    for tensor in _all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def check_external_data(model: onnx.ModelProto, base_dir: Path) -> None:
    """Raise `unsafe-model` unless every external reference stays a plain file inside `base_dir`."""
    root = base_dir.resolve()
    for tensor in external_tensors(model):
        entries = {entry.key: entry.value for entry in tensor.external_data}
        unknown = sorted(set(entries) - _KEYS)
        if unknown:
            raise _unsafe(tensor, f"has unknown external data keys {unknown}")
        location = entries.get("location", "")
        path = _resolve(tensor, location, root)
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise _unsafe(tensor, f"points at {location!r}, which is not a plain file")
        offset, length = _number(tensor, entries, "offset"), _number(tensor, entries, "length")
        if offset + (length or 0) > info.st_size:
            raise _unsafe(tensor, f"reads past the end of {location!r}")


def _resolve(tensor: onnx.TensorProto, location: str, root: Path) -> Path:
    if not location or "\x00" in location or "\\" in location or _DRIVE.match(location):
        raise _unsafe(tensor, f"has an invalid external data location {location!r}")
    relative = PurePosixPath(location)
    if relative.is_absolute() or ".." in relative.parts:
        raise _unsafe(tensor, f"points outside the model's folder ({location!r})")
    current = root
    for part in relative.parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            raise _unsafe(tensor, f"points at {location!r}, which is not in the upload") from None
        if stat.S_ISLNK(mode):
            raise _unsafe(tensor, f"points through a symbolic link ({location!r})")
    if not os.path.realpath(current).startswith(str(root) + os.sep):
        raise _unsafe(tensor, f"points outside the model's folder ({location!r})")
    return current


def _number(tensor: onnx.TensorProto, entries: dict[str, str], key: str) -> int:
    try:
        value = int(entries.get(key, "0"))
    except ValueError:
        raise _unsafe(tensor, f"has a non-numeric external data {key}") from None
    if value < 0:
        raise _unsafe(tensor, f"has a negative external data {key}")
    return value


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for graph in iter_graphs(model.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for node in iter_nodes(model):
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sparse in [attribute.sparse_tensor, *attribute.sparse_tensors]:
                yield from (sparse.values, sparse.indices)


def _unsafe(tensor: onnx.TensorProto, problem: str) -> TechniqueError:
    return TechniqueError(UnsafeModel, f"tensor {tensor.name!r} {problem}")
