"""Ingest refuses unsafe uploads: custom operators, hostile archives, external data outside the upload,
pt2 programs carrying code or pickles."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper
from torch import nn

from tests import model_zoo
from tests.security.hostile import with_external_location
from tests.worker.ingest_uploads import only_file, rejected


def _graph_model(node: onnx.NodeProto, *opsets: onnx.OperatorSetIdProto) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), *opsets])


@pytest.mark.parametrize(
    ("node", "domain"),
    [
        (helper.make_node("Swish", ["x"], ["y"], domain="com.example"), "com.example"),
        (helper.make_node("EPContext", ["x"], ["y"], domain="com.microsoft", embed_mode=1), "com.microsoft"),
        (helper.make_node("EPContext", ["x"], ["y"]), ""),
    ],
)
def test_custom_operators_and_ep_context_are_unsafe(
    node: onnx.NodeProto, domain: str, tmp_path: Path
) -> None:
    opsets = [helper.make_opsetid(domain, 1)] if domain else []
    onnx.save(_graph_model(node, *opsets), str(tmp_path / "model.onnx"))
    error = rejected(tmp_path / "model.onnx", tmp_path)
    assert error.slug == "unsafe-model"
    assert node.op_type in error.detail


def test_checker_failure_is_an_invalid_model(tmp_path: Path) -> None:
    onnx.save(_graph_model(helper.make_node("Relu", ["missing"], ["y"])), str(tmp_path / "model.onnx"))
    error = rejected(tmp_path / "model.onnx", tmp_path)
    assert error.slug == "invalid-model"
    assert "missing" in error.detail


def _zip(tmp_path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    ("members", "symlink", "reason"),
    [
        ({"model.onnx": b"", "../escape.bin": b"x"}, None, "outside"),
        ({"model.onnx": b"", "/tmp/absolute.bin": b"x"}, None, "absolute"),
        ({"model.onnx": b"", "C:\\weights.bin": b"x"}, None, "absolute"),
        ({"model.onnx": b""}, "weights.bin", "symbolic link"),
        ({"model.onnx": b"", "weights.bin": bytes(16 * 1024**2)}, None, "expands"),
        ({"model.onnx": b"", **{f"w{i}.bin": b"x" for i in range(1000)}}, None, "entries"),
    ],
)
def test_hostile_archives_are_unsafe(
    mlp_onnx: Path, members: dict[str, bytes], symlink: str | None, reason: str, tmp_path: Path
) -> None:
    members = {name: content or mlp_onnx.read_bytes() for name, content in members.items()}
    error = rejected(_zip(tmp_path, members, symlink), tmp_path)
    assert error.slug == "unsafe-model"
    assert reason in error.detail
    assert not (tmp_path / "escape.bin").exists()


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "data/../../secret.bin", "missing.bin"])
def test_external_data_outside_the_archive_is_unsafe(mlp_onnx: Path, location: str, tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(bytes(1 << 16))
    members = {
        "model/model.onnx": with_external_location(mlp_onnx.read_bytes(), location),
        "model/data/w.bin": b"x",
    }
    error = rejected(_zip(tmp_path, members), tmp_path)
    assert error.slug == "unsafe-model"
    assert location in error.detail


def test_external_data_from_a_bare_onnx_file_is_unsafe(mlp_onnx: Path, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(bytes(1 << 16))
    upload = only_file(tmp_path, "model.onnx", with_external_location(mlp_onnx.read_bytes(), "weights.bin"))
    error = rejected(upload, tmp_path)
    assert error.slug == "unsafe-model"
    assert ".zip" in error.detail


def _rewritten_pt2(source: Path, target: Path, extra: dict[str, bytes], edit: dict[str, Any]) -> Path:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as archive:
        for info in original.infolist():
            content = original.read(info)
            if info.filename.endswith("_weights_config.json") and edit:
                config = json.loads(content)
                next(iter(config["config"].values())).update(edit)
                content = json.dumps(config).encode()
            archive.writestr(info, content)
        for name, content in extra.items():
            archive.writestr(name, content)
    return target


@pytest.mark.parametrize(
    ("extra", "edit"),
    [
        ({"program/data/aotinductor/model/model.so": b"\x7fELF"}, {}),
        ({"program/data/constants/custom_obj_0": pickle.dumps(print)}, {}),
        ({}, {"use_pickle": True}),
    ],
)
def test_pt2_with_code_or_pickles_is_unsafe(
    mlp: nn.Module, extra: dict[str, bytes], edit: dict[str, Any], tmp_path: Path
) -> None:
    program = model_zoo.export_pt2(mlp, tmp_path / "program.pt2")
    upload = _rewritten_pt2(program, tmp_path / "hostile.pt2", extra, edit)
    error = rejected(upload, tmp_path)
    assert error.slug == "unsafe-model"


def test_one_side_file_rule_counts_inline_and_external_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import model_size

    weights = onnx.numpy_helper.from_array(np.ones((256, 256), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 256])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 256])],
        [weights],
    )
    model = onnx.helper.make_model(graph)
    inline = model_size.weight_bytes(model)
    onnx.save(
        model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.onnx.data", size_threshold=0
    )

    assert inline >= 256 * 256 * 4
    assert (
        model_size.weight_bytes(onnx.load(str(tmp_path / "m.onnx"), load_external_data=False))
        == 256 * 256 * 4
    )
    assert model_size.stored_bytes(tmp_path / "m.onnx") > 256 * 256 * 4
    assert not model_size.file_needs_side_file(tmp_path / "m.onnx")
    # Past the limit, the writer puts the weights beside the model (and every tool's `large` agrees).
    monkeypatch.setattr(model_size, "SINGLE_FILE_LIMIT", 1024)
    saved = model_size.save_model(onnx.load(str(tmp_path / "m.onnx")), tmp_path / "big.onnx")
    assert model_size.file_needs_side_file(saved)
    assert (tmp_path / "big.onnx.data").stat().st_size == 256 * 256 * 4
