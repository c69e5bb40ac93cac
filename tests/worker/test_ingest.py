"""Ingest: formats recognised by content, converted to one ONNX file, hostile uploads refused."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from torch import nn

from engine.contract import TechniqueError
from engine.ingest import ingest_model
from tests import model_zoo


def _ingest(upload: Path, tmp_path: Path, **kwargs: Any) -> tuple[dict[str, Any], Path]:
    output = tmp_path / "canonical.onnx"
    return ingest_model(str(upload), str(output), str(tmp_path / "work"), **kwargs), output


def _rejected(upload: Path, tmp_path: Path) -> TechniqueError:
    with pytest.raises(TechniqueError) as caught:
        _ingest(upload, tmp_path)
    return caught.value


def _run(path: Path, images: np.ndarray, input_name: str = "x") -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: images})[0]


def _torch_logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


def _only_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_onnx_upload_is_checked_and_summarised(mlp_onnx: Path, mlp: nn.Module, tmp_path: Path) -> None:
    upload = shutil.copy(mlp_onnx, tmp_path / "upload.bin")
    record, output = _ingest(Path(upload), tmp_path)
    assert record["format"] == "onnx"
    assert record["signature"] == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}],
    }
    assert record["parameters"] == sum(parameter.numel() for parameter in mlp.parameters())
    assert record["opset"] == onnx.load(str(mlp_onnx)).opset_import[0].version
    assert record["op_histogram"] == {"Flatten": 1, "Gemm": 3, "Relu": 2}
    json.dumps(record)
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(mlp, images), atol=1e-4)


def test_zip_with_external_data_is_folded_into_one_file(
    mlp_onnx: Path, mlp: nn.Module, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle" / "model"
    folder.mkdir(parents=True)
    model = onnx.load(str(mlp_onnx))
    onnx.save(
        model,
        str(folder / "digits.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    upload = tmp_path / "upload"
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in folder.iterdir():
            archive.write(file, f"model/{file.name}")
    record, output = _ingest(upload, tmp_path)
    assert record["format"] == "onnx-zip"
    assert record["parameters"] == sum(parameter.numel() for parameter in mlp.parameters())
    canonical = onnx.load(str(output), load_external_data=False)
    assert all(tensor.data_location == onnx.TensorProto.DEFAULT for tensor in canonical.graph.initializer)
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(mlp, images), atol=1e-4)


def test_pt2_is_converted_with_a_symbolic_batch(cnn: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_pt2(cnn, tmp_path / "program.onnx")
    record, output = _ingest(upload, tmp_path)
    assert record["format"] == "pt2"
    assert record["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert record["signature"]["outputs"][0]["shape"] == ["batch", 10]
    assert record["op_histogram"]["Conv"] == 2
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(cnn, images), atol=1e-4)


def test_torchscript_cnn_shape_is_read_from_its_first_conv(cnn: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(cnn, tmp_path / "scripted")
    record, output = _ingest(upload, tmp_path)
    assert record["format"] == "torchscript"
    assert record["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert any("guessed" in warning for warning in record["warnings"])
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(cnn, images), atol=1e-4)


def test_torchscript_mlp_uses_the_given_input_shape(mlp: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(mlp, tmp_path / "scripted.pt")
    record, output = _ingest(upload, tmp_path, input_shapes=[[1, 1, 8, 8]])
    assert record["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert record["warnings"] == []
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(mlp, images), atol=1e-4)


def test_torchscript_mlp_without_shapes_gets_the_flat_linear_input(mlp: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(mlp, tmp_path / "scripted.pt")
    record, _ = _ingest(upload, tmp_path)
    assert record["signature"]["inputs"][0]["shape"] == ["batch", 64]


def test_torchscript_shape_that_does_not_fit_is_refused(mlp: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(mlp, tmp_path / "scripted.pt")
    with pytest.raises(TechniqueError) as caught:
        _ingest(upload, tmp_path, input_shapes=[[1, 3, 8, 8]])
    assert caught.value.slug == "input-shape-required"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (pickle.dumps({"weights": [1.0, 2.0]}), "pickle"),
        (b"\x7fELF\x02\x01\x01" + bytes(64), "ELF"),
        (b"MZ\x90\x00" + bytes(64), "Windows"),
        (np.random.default_rng(0).bytes(4096), "not a recognised"),
        (b"", "empty"),
    ],
)
def test_unsupported_bytes_are_refused(content: bytes, reason: str, tmp_path: Path) -> None:
    error = _rejected(_only_file(tmp_path, "model.onnx", content), tmp_path)
    assert error.slug == "unsupported-format"
    assert reason in error.detail


def test_truncated_onnx_is_refused(mlp_onnx: Path, tmp_path: Path) -> None:
    content = mlp_onnx.read_bytes()
    error = _rejected(_only_file(tmp_path, "model.onnx", content[: len(content) // 2]), tmp_path)
    assert error.slug == "unsupported-format"
    assert "truncated" in error.detail


def test_truncated_zip_is_refused(mlp: nn.Module, tmp_path: Path) -> None:
    content = model_zoo.export_pt2(mlp, tmp_path / "program.pt2").read_bytes()
    error = _rejected(_only_file(tmp_path, "cut.pt2", content[: len(content) // 2]), tmp_path)
    assert error.slug == "unsupported-format"
    assert "truncated" in error.detail


def test_torch_save_checkpoint_is_refused(mlp: nn.Module, tmp_path: Path) -> None:
    torch.save(mlp.state_dict(), tmp_path / "weights.pt")
    error = _rejected(tmp_path / "weights.pt", tmp_path)
    assert error.slug == "unsupported-format"
    assert "torch.save" in error.detail


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
    error = _rejected(tmp_path / "model.onnx", tmp_path)
    assert error.slug == "unsafe-model"
    assert node.op_type in error.detail


def test_checker_failure_is_an_invalid_model(tmp_path: Path) -> None:
    onnx.save(_graph_model(helper.make_node("Relu", ["missing"], ["y"])), str(tmp_path / "model.onnx"))
    error = _rejected(tmp_path / "model.onnx", tmp_path)
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
    error = _rejected(_zip(tmp_path, members, symlink), tmp_path)
    assert error.slug == "unsafe-model"
    assert reason in error.detail
    assert not (tmp_path / "escape.bin").exists()


def _with_external_location(mlp_onnx: Path, location: str) -> bytes:
    model = onnx.load(str(mlp_onnx))
    tensor = model.graph.initializer[0]
    size = len(tensor.raw_data)
    tensor.ClearField("raw_data")
    for key, value in {"location": location, "offset": "0", "length": str(size)}.items():
        tensor.external_data.add(key=key, value=value)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    return model.SerializeToString()


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "data/../../secret.bin", "missing.bin"])
def test_external_data_outside_the_archive_is_unsafe(mlp_onnx: Path, location: str, tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(bytes(1 << 16))
    members = {"model/model.onnx": _with_external_location(mlp_onnx, location), "model/data/w.bin": b"x"}
    error = _rejected(_zip(tmp_path, members), tmp_path)
    assert error.slug == "unsafe-model"
    assert location in error.detail


def test_external_data_from_a_bare_onnx_file_is_unsafe(mlp_onnx: Path, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(bytes(1 << 16))
    upload = _only_file(tmp_path, "model.onnx", _with_external_location(mlp_onnx, "weights.bin"))
    error = _rejected(upload, tmp_path)
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
    error = _rejected(upload, tmp_path)
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
