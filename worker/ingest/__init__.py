"""Model ingest: recognise an upload by its bytes, vet it, convert it to one canonical ONNX file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.failures import InvalidModel
from worker.ingest.canonical import finalize, load_single, load_zipped
from worker.ingest.detect import detect_format
from worker.ingest.runtime import check_runtime_loads
from worker.ingest.safety import vetted
from worker.ingest.summary import signature, summarize
from worker.sandbox.contract import TechniqueError


def ingest_model(
    upload_path: str | Path,
    output_path: str | Path,
    workdir: str | Path,
    *,
    input_shapes: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Write the canonical ONNX model to `output_path` and return what ingest records about it.

    `input_shapes` (one shape per input, first dim = batch) is only used for TorchScript, whose
    archives do not record input shapes. Failures are `TechniqueError`s with slugs
    unsupported-format, unsafe-model, invalid-model, input-shape-required or conversion-failed.
    The record also carries `warnings`: plain-English notes for the user.
    """
    upload, output, work = Path(upload_path), Path(output_path), Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    source_format = detect_format(upload)
    warnings: list[str] = []
    if source_format == "onnx":
        model = load_single(upload)
    elif source_format == "onnx-zip":
        model = load_zipped(upload, work / "extracted")
    elif source_format == "pt2":
        from worker.ingest.pt2 import convert_pt2

        model = convert_pt2(upload, work, warnings)
    else:
        from worker.ingest.torchscript import convert_torchscript

        model = convert_torchscript(upload, work, input_shapes, warnings)
    model = vetted(model)
    if not signature(model)["inputs"]:
        raise TechniqueError(
            InvalidModel,
            "the model has no inputs: it computes constants, so there is nothing to compress or measure",
        )
    canonical = finalize(model, output, warnings)
    check_runtime_loads(output)
    return {**summarize(canonical, source_format), "warnings": warnings}
