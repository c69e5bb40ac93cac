"""Cheap content checks at upload time: refuse what is plainly not a model before queueing ingest."""

from __future__ import annotations

from service.errors import UnsupportedFormat

# Executables, libraries and bare pickles are never models we accept; the worker checks the rest.
_REFUSED_MAGIC = {
    b"\x7fELF": "an ELF executable or shared library",
    b"MZ": "a Windows executable or DLL",
    b"\xcf\xfa\xed\xfe": "a Mach-O binary",
    b"ftrt": "a TensorRT engine",
    b"\x80\x02": "a bare pickle",
    b"\x80\x03": "a bare pickle",
    b"\x80\x04": "a bare pickle",
    b"\x80\x05": "a bare pickle",
    b"\x1f\x8b": "a gzip/tar archive",
}


def check_model_head(head: bytes) -> None:
    """Raise UnsupportedFormat when the first bytes identify a refused kind of file."""
    for magic, what in _REFUSED_MAGIC.items():
        if head.startswith(magic):
            raise UnsupportedFormat(
                f"the file is {what}; upload ONNX (.onnx or a .zip with external data), "
                "a torch.export program (.pt2) or TorchScript (.pt)"
            )
    # TensorRT engines carry their tag at offset 4 to 8 in recent versions.
    if head[4:8] == b"ftrt":
        raise UnsupportedFormat("the file is a TensorRT engine; engines are built here, never accepted")
