"""Ingest: formats recognised by content, converted to one ONNX file; bytes of no known format refused
(unsafe uploads: test_ingest_unsafe.py)."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from engine.contract import TechniqueError
from tests import model_zoo
from tests.worker.ingest_uploads import ingest, only_file, rejected


def _run(path: Path, images: np.ndarray, input_name: str = "x") -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: images})[0]


def _torch_logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


def test_onnx_upload_is_checked_and_summarised(mlp_onnx: Path, mlp: nn.Module, tmp_path: Path) -> None:
    upload = shutil.copy(mlp_onnx, tmp_path / "upload.bin")
    record, output = ingest(Path(upload), tmp_path)
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
    record, output = ingest(upload, tmp_path)
    assert record["format"] == "onnx-zip"
    assert record["parameters"] == sum(parameter.numel() for parameter in mlp.parameters())
    canonical = onnx.load(str(output), load_external_data=False)
    assert all(tensor.data_location == onnx.TensorProto.DEFAULT for tensor in canonical.graph.initializer)
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(mlp, images), atol=1e-4)


def test_pt2_is_converted_with_a_symbolic_batch(cnn: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_pt2(cnn, tmp_path / "program.onnx")
    record, output = ingest(upload, tmp_path)
    assert record["format"] == "pt2"
    assert record["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert record["signature"]["outputs"][0]["shape"] == ["batch", 10]
    assert record["op_histogram"]["Conv"] == 2
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(cnn, images), atol=1e-4)


def test_torchscript_cnn_shape_is_read_from_its_first_conv(cnn: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(cnn, tmp_path / "scripted")
    record, output = ingest(upload, tmp_path)
    assert record["format"] == "torchscript"
    assert record["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert any("guessed" in warning for warning in record["warnings"])
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(cnn, images), atol=1e-4)


def test_torchscript_mlp_uses_the_given_input_shape(mlp: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(mlp, tmp_path / "scripted.pt")
    record, output = ingest(upload, tmp_path, input_shapes=[[1, 1, 8, 8]])
    assert record["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert record["warnings"] == []
    images, _ = model_zoo.digits()
    np.testing.assert_allclose(_run(output, images), _torch_logits(mlp, images), atol=1e-4)


def test_torchscript_mlp_without_shapes_gets_the_flat_linear_input(mlp: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(mlp, tmp_path / "scripted.pt")
    record, _ = ingest(upload, tmp_path)
    assert record["signature"]["inputs"][0]["shape"] == ["batch", 64]


def test_torchscript_shape_that_does_not_fit_is_refused(mlp: nn.Module, tmp_path: Path) -> None:
    upload = model_zoo.export_torchscript(mlp, tmp_path / "scripted.pt")
    with pytest.raises(TechniqueError) as caught:
        ingest(upload, tmp_path, input_shapes=[[1, 3, 8, 8]])
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
    error = rejected(only_file(tmp_path, "model.onnx", content), tmp_path)
    assert error.slug == "unsupported-format"
    assert reason in error.detail


def test_truncated_onnx_is_refused(mlp_onnx: Path, tmp_path: Path) -> None:
    content = mlp_onnx.read_bytes()
    error = rejected(only_file(tmp_path, "model.onnx", content[: len(content) // 2]), tmp_path)
    assert error.slug == "unsupported-format"
    assert "truncated" in error.detail


def test_truncated_zip_is_refused(mlp: nn.Module, tmp_path: Path) -> None:
    content = model_zoo.export_pt2(mlp, tmp_path / "program.pt2").read_bytes()
    error = rejected(only_file(tmp_path, "cut.pt2", content[: len(content) // 2]), tmp_path)
    assert error.slug == "unsupported-format"
    assert "truncated" in error.detail


def test_torch_save_checkpoint_is_refused(mlp: nn.Module, tmp_path: Path) -> None:
    torch.save(mlp.state_dict(), tmp_path / "weights.pt")
    error = rejected(tmp_path / "weights.pt", tmp_path)
    assert error.slug == "unsupported-format"
    assert "torch.save" in error.detail
