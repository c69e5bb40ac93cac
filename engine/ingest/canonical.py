"""ONNX uploads to the canonical model: parse, vet, fold external data, check, infer shapes, save."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import load_external_data_for_model

from engine.contract import TechniqueError
from engine.errortext import brief
from engine.ingest.archive import extract_archive
from engine.ingest.external import check_external_data, external_tensors
from engine.ingest.safety import vetted
from engine.model_size import needs_side_file
from service.errors import UnsupportedFormat
from service.failures import InvalidModel, UnsafeModel


def load_single(path: Path) -> onnx.ModelProto:
    """A bare .onnx upload, which may not reference external files."""
    model = vetted(parse(path))
    for tensor in external_tensors(model):
        raise TechniqueError(
            UnsafeModel,
            f"tensor {tensor.name!r} refers to an external data file; upload the .onnx file and its data"
            " files together in one .zip",
        )
    return model


def load_zipped(path: Path, destination: Path) -> onnx.ModelProto:
    """A .zip of one .onnx file and its external data: extract safely, vet every location, fold."""
    files = extract_archive(path, destination)
    model_file = next(file for file in files if file.name.lower().endswith(".onnx"))
    model = vetted(parse(model_file))
    check_external_data(model, model_file.parent)
    try:
        load_external_data_for_model(model, str(model_file.parent))
    except (OSError, ValueError) as error:
        raise TechniqueError(InvalidModel, f"external data cannot be read: {brief(error)}") from None
    return model


def parse(path: Path) -> onnx.ModelProto:
    """The ModelProto without external data; a parse failure is not a model we recognise."""
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as error:
        raise TechniqueError(
            UnsupportedFormat,
            f"the file looks like ONNX but cannot be parsed (truncated or corrupt): {brief(error)}",
        ) from None


def finalize(model: onnx.ModelProto, output_path: Path, warnings: list[str]) -> onnx.ModelProto:
    """Check the model, add inferred shapes and save it as one file (a side file past engine/model_size)."""
    if needs_side_file(model):
        onnx.save(model, str(output_path), save_as_external_data=True, location=output_path.name + ".data")
        _check(str(output_path), warnings)
        onnx.shape_inference.infer_shapes_path(str(output_path), str(output_path))
        return onnx.load(str(output_path))
    _check(model, warnings)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, ValueError) as error:
        warnings.append(f"shape inference failed, shapes are stored as uploaded: {brief(error)}")
        inferred = model
    onnx.save(inferred, str(output_path))
    return inferred


def _check(model: onnx.ModelProto | str, warnings: list[str]) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
        return
    except onnx.checker.ValidationError as error:
        raise TechniqueError(InvalidModel, f"the ONNX checker rejected the model: {brief(error)}") from None
    except onnx.shape_inference.InferenceError as error:
        strict_failure = brief(error)
    # Strict shape inference rejects some models that run; accept them when the basic check passes.
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise TechniqueError(InvalidModel, f"the ONNX checker rejected the model: {brief(error)}") from None
    warnings.append(f"strict shape inference failed: {strict_failure}")
