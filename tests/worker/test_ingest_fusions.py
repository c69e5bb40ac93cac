"""Fusions at ingest: a spelled-out HardSwish and a Conv's scalar affine become single nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

from engine.bridge import from_onnx, to_onnx
from engine.ingest import ingest_model
from tests import model_zoo
from tests.worker.converter_graphs import SpelledOutCNN


@pytest.fixture(scope="module")
def spelled_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SpelledOutCNN trained on digits, exported at opset 13 as converters write it."""
    model = model_zoo.trained(SpelledOutCNN, epochs=8)
    path = tmp_path_factory.mktemp("fusions") / "spelled_out.onnx"
    torch.onnx.export(
        model, (torch.zeros(2, 1, 8, 8),), str(path), input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}}, opset_version=13, dynamo=False,
    )  # fmt: skip
    return path


def _ingested(upload: Path, folder: Path) -> tuple[dict, Path]:
    normalized = folder / "normalized.onnx"
    return ingest_model(
        upload, folder / "model.onnx", folder / "work", normalized_path=normalized
    ), normalized


def _outputs(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def test_spelled_out_hardswish_and_conv_affine_are_fused(spelled_out: Path, tmp_path: Path) -> None:
    uploaded = {node.op_type for node in onnx.load(str(spelled_out)).graph.node}
    assert {"Clip", "Div", "Mul", "Add"} <= uploaded and "HardSwish" not in uploaded
    record, normalized_path = _ingested(spelled_out, tmp_path)
    normalization = record["normalization"]
    assert normalization["applied"] is True
    assert normalization["changes"]["fused"] == {"conv_affine": 1, "hardswish": 2}
    # Results are compared with the upload: the user is told part of any speedup is the fusing's.
    assert any("fused 1 conv_affine, 2 hardswish" in warning for warning in record["warnings"])
    normalized = onnx.load(str(normalized_path))
    ops = [node.op_type for node in normalized.graph.node]
    assert ops.count("HardSwish") == 2 and not {"Clip", "Div", "Mul"} & set(ops)
    # HardSwish needs opset 14; the upload's opset stays the record's first entry.
    assert normalization["changes"]["opset"] == [13, 14]
    images, labels = model_zoo.digits("test")
    fused, original = _outputs(normalized_path, images), _outputs(spelled_out, images)
    assert np.abs(fused - original).max() <= 1e-5 * max(1.0, float(np.abs(original).max()))
    assert (fused.argmax(1) == labels).mean() == (original.argmax(1) == labels).mean() > 0.8


def test_the_bridge_runs_the_fused_graph(spelled_out: Path, tmp_path: Path) -> None:
    _, normalized_path = _ingested(spelled_out, tmp_path)
    module = from_onnx(onnx.load(str(normalized_path)))
    images, _ = model_zoo.digits("test")
    with torch.no_grad():
        bridged = module(torch.from_numpy(images)).numpy()
    assert np.abs(bridged - _outputs(normalized_path, images)).max() <= 1e-5
    exported = to_onnx(module, tmp_path / "roundtrip.onnx")
    assert np.abs(_outputs(Path(exported), images) - bridged).max() <= 1e-5


def test_fusions_that_round_past_the_bar_are_left_out(spelled_out: Path, tmp_path: Path) -> None:
    """A shift of 1e6 undone later: folding it into the Conv's bias rounds differently at that size."""
    model = onnx.load(str(spelled_out))
    graph = model.graph
    shift = next(node for node in graph.node if node.op_type == "Add" and _is_scalar(graph, node.input[1]))
    for name, value in (("big", 1e6), ("minus_big", -1e6)):
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
    # x + t becomes (x + (t + 1e6)) - 1e6: the same function, with 1e6 inside the affine.
    bigger, shifted = f"{shift.input[1]}__big", f"{shift.output[0]}__big"
    for node in graph.node:
        if shift.output[0] in node.input:
            node.input[list(node.input).index(shift.output[0])] = shifted
    graph.node.extend(
        [
            helper.make_node("Add", [shift.input[1], "big"], [bigger]),
            helper.make_node("Add", [shift.output[0], "minus_big"], [shifted]),
        ]
    )
    shift.input[1] = bigger
    onnx.save(_sorted(model), str(tmp_path / "big.onnx"))
    record, normalized_path = _ingested(tmp_path / "big.onnx", tmp_path)
    normalization = record["normalization"]
    assert normalization["applied"] is True and normalization["changes"]["fused"] == {}
    assert "HardSwish" not in {node.op_type for node in onnx.load(str(normalized_path)).graph.node}


def _is_scalar(graph: onnx.GraphProto, name: str) -> bool:
    return any(
        tensor.name == name and numpy_helper.to_array(tensor).size == 1 for tensor in graph.initializer
    )


def _sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its nodes in an order where every input is produced before it is read."""
    graph = model.graph
    known = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = next(node for node in pending if set(node.input) <= known)
        ordered.append(ready)
        known.update(ready.output)
        pending.remove(ready)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.checker.check_model(model)
    return model
