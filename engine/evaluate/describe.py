"""Static facts about an ONNX model file: bytes on disk, parameters, operators."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import onnx

from engine.evaluate.parameters import count_parameters, iter_graphs
from engine.evaluate.sparsity import per_layer_sparsity

# gzip's default level: what a user gets with `gzip -k model.onnx`.
GZIP_LEVEL = 6
CHUNK_BYTES = 1 << 20


def describe_model(path: str | Path) -> dict[str, Any]:
    """size_bytes (the model file plus its external data files), parameters, nonzero_parameters."""
    path = Path(path)
    return describe_loaded(onnx.load(str(path)), path)


def describe_loaded(model: onnx.ModelProto, path: Path) -> dict[str, Any]:
    """describe_model for a model already loaded from `path` (external data included).

    `compressed_size_bytes` is the files gzip-compressed: zeroed weights keep a tensor's shape and its
    bytes on disk, so only compression shows what unstructured sparsity saves in storage.
    `per_layer_sparsity` is there only when some layer is sparse.
    """
    count = count_parameters(model)
    files = model_files(path)
    described: dict[str, Any] = {
        "size_bytes": sum(file.stat().st_size for file in files),
        "compressed_size_bytes": sum(gzip_size_bytes(file) for file in files),
        "parameters": count.parameters,
        "nonzero_parameters": count.nonzero,
    }
    sparsity = per_layer_sparsity(model)
    if sparsity is not None:
        described["per_layer_sparsity"] = sparsity
    return described


def model_size_bytes(path: Path) -> int:
    """Bytes of the model file and of every external data file it references."""
    return sum(file.stat().st_size for file in model_files(path))


def model_files(path: Path) -> list[Path]:
    """The model file and every external data file it references."""
    skeleton = onnx.load(str(path), load_external_data=False)
    locations = {
        entry.value
        for graph in iter_graphs(skeleton.graph)
        for tensor in graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path, *(path.parent / location for location in sorted(locations))]


def gzip_size_bytes(path: Path) -> int:
    """Size of the file gzip-compressed, streamed so a large model is never whole in memory."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each op type the model has, subgraphs included."""
    counts = Counter(node.op_type for graph in iter_graphs(model.graph) for node in graph.node)
    return dict(sorted(counts.items()))
