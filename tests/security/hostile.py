"""Builders of hostile uploads: pickles that would leave a canary, bombs, tampered archives.

Every pickle in here would, if unpickled, run `touch <canary>`; the tests assert that no canary
file ever appears. Nothing here is loaded by the test process itself.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper


@dataclass(frozen=True)
class Hostile:
    """One hostile file: its upload name, bytes, and the expected refusal.

    `stage` is "upload" (refused by the API with `status`) or "ingest" (accepted, then rejected
    by the worker); `slug` is the problem type's last path segment.
    """

    name: str
    content: bytes
    stage: str
    slug: str
    status: int = 0
    endpoint: str = "models"


class _Canary:
    """Pickles to a call of os.system that creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {self.path}",)


def canary_pickle(canary: Path, protocol: int = 4) -> bytes:
    """A pickle that would create `canary` when loaded."""
    return pickle.dumps(_Canary(canary), protocol=protocol)


def zip_of(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A deflated zip of the members, plus symbolic-link entries pointing at the given targets."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def zip_bomb(onnx_bytes: bytes, expanded_mib: int = 256) -> bytes:
    """A model archive with a member of `expanded_mib` MiB of zeros (about 1000:1 compressed)."""
    buffer = io.BytesIO()
    zero = bytes(1024 * 1024)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("model.onnx", onnx_bytes)
        with archive.open("weights.bin", "w") as member:
            for _ in range(expanded_mib):
                member.write(zero)
    return buffer.getvalue()


def with_external_location(onnx_bytes: bytes, location: str) -> bytes:
    """The model with its first initializer moved to external data at `location`."""
    model = onnx.load_from_string(onnx_bytes)
    tensor = model.graph.initializer[0]
    size = len(tensor.raw_data)
    tensor.ClearField("raw_data")
    for key, value in {"location": location, "offset": "0", "length": str(size)}.items():
        tensor.external_data.add(key=key, value=value)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    return model.SerializeToString()


def single_node_model(node: onnx.NodeProto, domain: str | None = None) -> bytes:
    """A one-node ONNX model, declaring `domain` when the node needs it."""
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 20)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def pt2_with(program: bytes, extra: dict[str, bytes], sample_inputs: bytes | None = None) -> bytes:
    """A real .pt2 archive with extra records added, or its sample inputs replaced."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(program)) as source, zipfile.ZipFile(buffer, "w") as target:
        root = source.namelist()[0].split("/", 1)[0]
        for info in source.infolist():
            content = source.read(info)
            if sample_inputs is not None and "/data/sample_inputs/" in info.filename:
                content = sample_inputs
            target.writestr(info, content)
        for name, content in extra.items():
            target.writestr(f"{root}/{name}", content)
    return buffer.getvalue()


def object_npz(canary: Path) -> bytes:
    """An .npz whose array holds a Python object (stored as a pickle)."""
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([_Canary(canary)], dtype=object))
    return buffer.getvalue()
