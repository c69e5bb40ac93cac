"""The one rule for when a model's weights go to a side file: past what one protobuf message safely holds.

Protobuf refuses to serialize a message over 2 GiB. Every tool on the way (ingest, the bridge,
quantizers adding scales, zero points and Q/DQ nodes) grows a model a little, so the rule keeps a
margin under the hard limit, and every writer and every `large=` decision asks it.
"""

from __future__ import annotations

from pathlib import Path

import onnx

SINGLE_FILE_LIMIT = 2 * 1024**3 - 256 * 1024**2


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the model's initializers, whether held inline or in external files."""
    total = 0
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            total += int({entry.key: entry.value for entry in tensor.external_data}.get("length", 0))
        else:
            total += tensor.ByteSize()
    return total


def stored_bytes(model_path: Path) -> int:
    """Size of the model file and of the external-data files it references."""
    skeleton = onnx.load(str(model_path), load_external_data=False)
    locations = {
        entry.value
        for tensor in skeleton.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return model_path.stat().st_size + sum((model_path.parent / name).stat().st_size for name in locations)


def needs_side_file(model: onnx.ModelProto) -> bool:
    """Whether an in-memory model must be saved with its weights beside it."""
    return weight_bytes(model) > SINGLE_FILE_LIMIT


def file_needs_side_file(model_path: Path) -> bool:
    """Whether a stored model is past the single-file rule (tools must then keep its weights external)."""
    return stored_bytes(model_path) > SINGLE_FILE_LIMIT


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write a model, with its weights in `<name>.data` beside it when the rule says so."""
    if needs_side_file(model):
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save(model, str(path))
    return path
