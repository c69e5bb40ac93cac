"""Model ingest: recognise an upload by its bytes, vet it, convert it to one canonical ONNX file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from engine.contract import TechniqueError
from engine.ingest.canonical import finalize, load_single, load_zipped
from engine.ingest.detect import detect_format
from engine.ingest.normalize import FALLBACK, normalize
from engine.ingest.runtime import check_runtime_loads
from engine.ingest.safety import vetted
from engine.ingest.summary import signature, summarize
from engine.model_size import needs_side_file
from service.failures import InvalidModel


def ingest_model(
    upload_path: str | Path,
    output_path: str | Path,
    workdir: str | Path,
    *,
    input_shapes: Sequence[Sequence[int]] | None = None,
    normalized_path: str | Path | None = None,
) -> dict[str, Any]:
    """Write the canonical ONNX model to `output_path` and return what ingest records about it.

    `input_shapes` (one shape per input, first dim = batch) is only used for TorchScript, whose
    archives do not record input shapes. Failures are `TechniqueError`s with slugs
    unsupported-format, unsafe-model, invalid-model, input-shape-required or conversion-failed.
    The record also carries `warnings`: plain-English notes for the user, and `normalization`:
    what normalizing changed, written to `normalized_path` when it applied (see normalize.py).
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
        from engine.ingest.pt2 import convert_pt2

        model = convert_pt2(upload, work, warnings)
    else:
        from engine.ingest.torchscript import convert_torchscript

        model = convert_torchscript(upload, work, input_shapes, warnings)
    model = vetted(model)
    if not signature(model)["inputs"]:
        raise TechniqueError(
            InvalidModel,
            "the model has no inputs: it computes constants, so there is nothing to compress or measure",
        )
    canonical = finalize(model, output, warnings)
    check_runtime_loads(output)
    record = summarize(canonical, source_format)
    normalization = _normalize(canonical, record["signature"], normalized_path)
    if str(normalization.get("note")).startswith(FALLBACK):
        warnings.append(normalization["note"])
    fused = (normalization.get("changes") or {}).get("fused") if normalization.get("applied") else None
    if fused:
        warnings.append(
            f"normalization fused {', '.join(f'{count} {name}' for name, count in fused.items())}; every"
            " technique starts from the fused graph, so a result's speedup over this upload includes"
            " what fusing alone gives"
        )
    return {**record, "warnings": warnings, "normalization": normalization}


def _normalize(
    canonical: onnx.ModelProto, signature: dict[str, Any], path: str | Path | None
) -> dict[str, Any]:
    """Normalize a single-file model and save it to `path`; larger models are used as uploaded."""
    if path is None:
        return {"applied": False, "note": "normalization was not requested"}
    if needs_side_file(canonical):
        return {"applied": False, "note": f"{FALLBACK}: it is stored with external data (over 2 GiB)"}
    normalized, record = normalize(canonical, signature)
    if normalized is not None:
        onnx.save(normalized, str(path))
    return record
