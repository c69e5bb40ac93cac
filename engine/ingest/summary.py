"""What ingest records about a canonical model: signature, parameters, opset and operators."""

from __future__ import annotations

from typing import Any

import onnx

from engine.evaluate.describe import op_histogram
from engine.evaluate.parameters import count_parameters
from engine.ingest.decoder import decoder_layout, token_embedding_rows


def summarize(model: onnx.ModelProto, source_format: str) -> dict[str, Any]:
    """The ingest record; `model` must hold its weights (external data loaded)."""
    described: dict[str, Any] = signature(model)
    layout = decoder_layout(described, token_embedding_rows(model))
    if layout is not None:
        described["decoder"] = layout
    return {
        "format": source_format,
        "signature": described,
        "parameters": count_parameters(model).parameters,
        "opset": opset(model),
        "op_histogram": op_histogram(model),
    }


def signature(model: onnx.ModelProto) -> dict[str, list[dict[str, Any]]]:
    """Graph inputs (initializers excluded) and outputs: name, numpy dtype name, shape."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    return {
        "inputs": [_value(value) for value in model.graph.input if value.name not in initializers],
        "outputs": [_value(value) for value in model.graph.output],
    }


def opset(model: onnx.ModelProto) -> int:
    """The default-domain opset version the model imports."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _value(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    except (KeyError, ValueError):
        dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    shape: list[int | str | None] | None = None
    if tensor.HasField("shape"):
        shape = [_dim(dim) for dim in tensor.shape.dim]
    return {"name": value.name, "dtype": dtype, "shape": shape}


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    # Some converters write -1 (or 0) for a free dim; it is unknown, not a size.
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return dim.dim_param
    return None
