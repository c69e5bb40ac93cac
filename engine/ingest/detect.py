"""Deciding an upload's format from its bytes; the file name is never consulted."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Literal

from engine.contract import TechniqueError
from engine.errortext import brief
from service.errors import UnsupportedFormat

Format = Literal["onnx", "onnx-zip", "pt2", "torchscript"]

EXPECTED = (
    "expected an ONNX model, a .zip of one ONNX model and its external data, a torch.export .pt2"
    " or TorchScript"
)
MAX_IR_VERSION = 32

_REJECTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable or shared library"),
    (b"MZ", "a Windows executable or DLL"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable or library"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable or library"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class file"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (e.g. a Keras .h5 model)"),
    (b"\x1f\x8b", "a gzip file; compress models with zip"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive; compress models with zip"),
    (b"\x93NUMPY", "a NumPy array file, not a model"),
    (b"GGUF", "a GGUF file, which this service does not accept"),
)
_TORCHSCRIPT = (
    re.compile(r"(^|/)constants\.pkl$"),
    re.compile(r"(^|/)code/"),
    re.compile(r"(^|/)data\.pkl$"),
)
_PT2 = re.compile(r"(^|/)(archive_format|models/[^/]+\.json|data/aotinductor/.*)$")
_PICKLE_CHECKPOINT = re.compile(r"(^|/)data\.pkl$")


def detect_format(path: Path) -> Format:
    """The upload's format, or `unsupported-format` naming what the bytes are when recognisable."""
    with path.open("rb") as upload:
        head = upload.read(512)
    if not head:
        raise TechniqueError(UnsupportedFormat, "the file is empty")
    if head.startswith(b"PK"):
        return _zip_format(path)
    for magic, what in _REJECTED_MAGIC:
        if head.startswith(magic):
            raise TechniqueError(UnsupportedFormat, f"the file is {what}; {EXPECTED}")
    if head[257:262] == b"ustar":
        raise TechniqueError(UnsupportedFormat, f"the file is a tar archive; {EXPECTED}")
    if len(head) >= 2 and head[0] == 0x80 and 1 <= head[1] <= 5:
        raise TechniqueError(
            UnsupportedFormat, f"the file is a Python pickle, which can run code when loaded; {EXPECTED}"
        )
    if _looks_like_safetensors(head):
        raise TechniqueError(
            UnsupportedFormat, f"the file is safetensors, which holds weights but no graph; {EXPECTED}"
        )
    if _looks_like_onnx(head):
        return "onnx"
    raise TechniqueError(UnsupportedFormat, f"the file is not a recognised model format; {EXPECTED}")


def _zip_format(path: Path) -> Format:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise TechniqueError(
            UnsupportedFormat,
            f"the file starts like a zip archive but is truncated or corrupt ({brief(error)})",
        ) from None
    if all(any(pattern.search(name) for name in names) for pattern in _TORCHSCRIPT):
        return "torchscript"
    if any(_PT2.search(name) for name in names):
        return "pt2"
    if any(_PICKLE_CHECKPOINT.search(name) for name in names):
        raise TechniqueError(
            UnsupportedFormat,
            "the file is a torch.save checkpoint (a pickle of weights, no graph); export the model with"
            " torch.export.save or torch.onnx.export and upload that",
        )
    models = [name for name in names if name.lower().endswith(".onnx")]
    if len(models) == 1:
        return "onnx-zip"
    if len(models) > 1:
        raise TechniqueError(
            UnsupportedFormat, f"the archive holds {len(models)} .onnx files; upload one model per archive"
        )
    raise TechniqueError(UnsupportedFormat, f"the zip archive holds no recognised model; {EXPECTED}")


def _looks_like_onnx(head: bytes) -> bool:
    """A serialized ModelProto starts with field 1 (ir_version) as a small varint."""
    if len(head) < 2 or head[0] != 0x08:
        return False
    return 1 <= head[1] <= MAX_IR_VERSION


def _looks_like_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    return len(head) > 9 and head[8:10] in (b'{"', b"{}") and int.from_bytes(head[:8], "little") < 100_000_000
