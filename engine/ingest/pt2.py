"""torch.export programs (.pt2) to ONNX, without letting the archive unpickle anything.

torch.export.load unpickles without the weights-only restriction in several places: weights or constants
flagged `use_pickle`, custom objects, legacy weight files, and a fallback when sample inputs fail
the restricted loader. So every record must be on an allowlist of plain tensor bytes and JSON, no
payload may be pickled, and the sample inputs (a pickle) are replaced by an empty record, which
torch.export.load reads as "no sample inputs".
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import onnx

from engine.contract import TechniqueError
from engine.errortext import summary
from engine.evaluate.inputs import generate_inputs
from engine.ingest.archive import check_archive
from engine.ingest.summary import signature
from engine.ingest.verify import VERIFY_BATCH, verify_conversion
from service.failures import ConversionFailed, InvalidModel, UnsafeModel

MAX_ENTRIES = 10_000
_ALLOWED = re.compile(
    r"(archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id"
    r"|models/[^/]+\.json|extra/[^/]+\.json"
    r"|data/weights/weight_\d+|data/weights/[^/]+_(weights|model_param)_config\.json"
    r"|data/constants/tensor_\d+|data/constants/[^/]+_(constants|model_constants)_config\.json"
    r"|data/sample_inputs/[^/]+\.pt)"
)
_PAYLOAD = re.compile(r"(weight|tensor)_\d+")
_CONFIG = re.compile(r"data/(weights|constants)/[^/]+_config\.json")
_SAMPLE_INPUTS = re.compile(r"data/sample_inputs/[^/]+\.pt")


def convert_pt2(path: Path, workdir: Path, warnings: list[str]) -> onnx.ModelProto:
    """Load the vetted program and export it with the dynamo exporter; dynamic dims stay symbolic."""
    import torch

    sanitized = _sanitized_copy(path, workdir / "program.pt2")
    try:
        program = torch.export.load(str(sanitized))
    except Exception as error:  # torch raises many types for malformed programs
        raise TechniqueError(
            InvalidModel, f"torch.export.load cannot read the program: {summary(error)}"
        ) from None
    converted = workdir / "converted.onnx"
    try:
        exported = torch.onnx.export(program, (), dynamo=True, verbose=False)
        if exported is None:
            raise RuntimeError("the exporter returned nothing")
        exported.save(str(converted))
    except Exception as error:  # exporter failures name the unsupported operator
        raise TechniqueError(
            ConversionFailed, f"the program cannot be exported to ONNX: {summary(error)}"
        ) from None
    model = onnx.load(str(converted))
    _name_batch_dim(model)
    onnx.save(model, str(converted))
    inputs = generate_inputs(signature(model), VERIFY_BATCH)
    if warning := verify_conversion(program.module(), converted, inputs):
        warnings.append(warning)
    return model


def _sanitized_copy(path: Path, target: Path) -> Path:
    """Check every record against the allowlist and rewrite the archive with empty sample inputs."""
    members = check_archive(path, max_entries=MAX_ENTRIES)
    roots = {member.filename.split("/", 1)[0] for member in members}
    if len(roots) != 1:
        raise TechniqueError(UnsafeModel, "a .pt2 archive must keep every record under one folder")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as sink:
        for member in members:
            relative = member.filename.split("/", 1)[1] if "/" in member.filename else ""
            if not _ALLOWED.fullmatch(relative):
                raise TechniqueError(
                    UnsafeModel,
                    f"the .pt2 archive holds {relative!r}, which is not a plain weight or JSON record"
                    " (compiled AOTInductor code, custom objects and pickled payloads are refused)",
                )
            data = source.read(member)
            if _CONFIG.fullmatch(relative):
                _check_payload_config(relative, data)
            sink.writestr(member, b"" if _SAMPLE_INPUTS.fullmatch(relative) else data)
    return target


def _check_payload_config(name: str, data: bytes) -> None:
    try:
        entries = json.loads(data)["config"].values()
        safe = all(not entry["use_pickle"] and _PAYLOAD.fullmatch(entry["path_name"]) for entry in entries)
    except (ValueError, KeyError, TypeError, AttributeError):
        safe = False
    if not safe:
        raise TechniqueError(UnsafeModel, f"{name} declares pickled or unrecognised payloads")


def _name_batch_dim(model: onnx.ModelProto) -> None:
    """Rename the exporter's symbol for dim 0 (e.g. 's77') to 'batch' wherever it appears."""
    first = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    if not first or not first[0].dim_param:
        return
    old = first[0].dim_param
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    dims = [dim for value in values for dim in value.type.tensor_type.shape.dim]
    if any(dim.dim_param == "batch" for dim in dims):
        return
    for dim in dims:
        if dim.dim_param == old:
            dim.dim_param = "batch"
