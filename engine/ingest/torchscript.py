"""TorchScript archives to ONNX through the legacy (tracing) exporter.

TorchScript does not record input shapes, so export needs example inputs: either the caller's
`input_shapes`, or a guess from the first Linear or Conv layer (the input's feature or channel
count; spatial sizes are found by trying common ones). A guess only covers single-input models
whose first registered layer is the first one applied, e.g. a Linear after Flatten is guessed as
(batch, in_features) even when the model was trained on images; pass `input_shapes` then.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine.contract import TechniqueError
from engine.errortext import summary
from engine.ingest.archive import check_archive
from engine.ingest.verify import VERIFY_BATCH, verify_conversion
from service.failures import ConversionFailed, InputShapeRequired, InvalidModel

MAX_ENTRIES = 10_000
TRACE_BATCH = 2
SPATIAL_SIZES = (8, 16, 28, 32, 64, 96, 112, 128, 160, 224, 256, 299, 384, 512)
_CONV_RANK = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3}


def convert_torchscript(
    path: Path, workdir: Path, input_shapes: Sequence[Sequence[int]] | None, warnings: list[str]
) -> onnx.ModelProto:
    """Load on CPU, find example inputs, export with a symbolic batch dimension, verify."""
    import torch

    check_archive(path, max_entries=MAX_ENTRIES)
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:  # torch raises RuntimeError and friends for bad archives
        raise TechniqueError(
            InvalidModel, f"torch.jit.load cannot read the archive: {summary(error)}"
        ) from None
    names = [value.debugName().split(".")[0] for value in list(module.forward.graph.inputs())[1:]]
    if input_shapes is not None:
        shapes = [[TRACE_BATCH, *shape[1:]] for shape in input_shapes]
        if len(shapes) != len(names) or any(len(shape) == 0 for shape in shapes):
            raise TechniqueError(
                InputShapeRequired, f"input_shapes must give one non-empty shape for each of {names}"
            )
        outputs = _run(module, shapes)
        if outputs is None:
            raise TechniqueError(InputShapeRequired, f"the model does not accept inputs of shapes {shapes}")
    else:
        shapes, outputs = _guess(module, names)
        warnings.append(
            f"input shape {['batch', *shapes[0][1:]]} was guessed from the first layer; upload with"
            " input_shapes if the model expects another"
        )
    output_names = ["output"] if outputs == 1 else [f"output_{index}" for index in range(outputs)]
    converted = workdir / "converted.onnx"
    examples = tuple(torch.from_numpy(_example(shape)) for shape in shapes)
    try:
        torch.onnx.export(
            module, examples, str(converted), input_names=names, output_names=output_names,
            dynamic_axes={name: {0: "batch"} for name in [*names, *output_names]}, dynamo=False,
        )  # fmt: skip
    except Exception as error:  # exporter failures name the unsupported operator
        raise TechniqueError(
            ConversionFailed, f"the model cannot be exported to ONNX: {summary(error)}"
        ) from None
    inputs = {name: _example([VERIFY_BATCH, *shape[1:]]) for name, shape in zip(names, shapes, strict=True)}
    if warning := verify_conversion(module, converted, inputs):
        warnings.append(warning)
    return onnx.load(str(converted))


def _guess(module: Any, names: list[str]) -> tuple[list[list[int]], int]:
    """Example input shapes read from the first Linear or ConvNd layer, and the output count."""
    if len(names) != 1:
        raise TechniqueError(
            InputShapeRequired, f"the model takes {len(names)} inputs; give their shapes in input_shapes"
        )
    for _, layer in module.named_modules():
        kind = getattr(layer, "original_name", "")
        if kind == "Linear":
            candidates = [[TRACE_BATCH, int(layer.weight.shape[1])]]
        elif kind in _CONV_RANK:
            channels = int(layer.weight.shape[1]) * int(getattr(layer, "groups", 1))
            candidates = [[TRACE_BATCH, channels, *[size] * _CONV_RANK[kind]] for size in SPATIAL_SIZES]
        else:
            continue
        for shape in candidates:
            outputs = _run(module, [shape])
            if outputs is not None:
                return [shape], outputs
        break
    raise TechniqueError(
        InputShapeRequired,
        "the input shape of this TorchScript model cannot be inferred; upload it with input_shapes",
    )


def _run(module: Any, shapes: list[list[int]]) -> int | None:
    """How many tensors the model returns for inputs of these shapes; None when it rejects them."""
    import torch

    try:
        with torch.no_grad():
            result = module(*[torch.from_numpy(_example(shape)) for shape in shapes])
    except Exception:  # any failure means "not this shape"
        return None
    return len(result) if isinstance(result, tuple | list) else 1


def _example(shape: Sequence[int]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(tuple(shape)).astype(np.float32)
