"""Normalization at ingest: Constant-node weights become initializers, outputs stay identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from engine.bridge import from_onnx, to_onnx
from engine.ingest import ingest_model
from engine.ingest.equivalent import compare_outputs
from engine.ingest.summary import signature
from tests import model_zoo
from tests.worker.converter_graphs import PaddedCNN, constant_weights


@pytest.fixture(scope="module")
def constant_cnn(tmp_path_factory: pytest.TempPathFactory, cnn_onnx: Path) -> Path:
    """The digits CNN with every weight in a Constant node, some through Identity, Cast or Reshape."""
    return constant_weights(cnn_onnx, tmp_path_factory.mktemp("converted") / "constant_cnn.onnx")


def _outputs(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def test_constant_weights_are_lifted_to_initializers(constant_cnn: Path, tmp_path: Path) -> None:
    record = ingest_model(
        constant_cnn, tmp_path / "model.onnx", tmp_path / "work", normalized_path=tmp_path / "normalized.onnx"
    )
    normalized = onnx.load(str(tmp_path / "normalized.onnx")).graph
    uploaded = onnx.load(str(constant_cnn)).graph
    normalization = record["normalization"]
    assert normalization["applied"] is True
    assert not {"Constant", "Identity", "Cast", "Reshape"} & {node.op_type for node in normalized.node}
    assert normalization["changes"]["constants_lifted"] == sum(n.op_type == "Constant" for n in uploaded.node)
    assert normalization["changes"]["nodes_removed"]["Identity"] > 0
    initializers = {tensor.name for tensor in normalized.initializer}
    assert all(node.input[1] in initializers for node in normalized.node if node.op_type in ("Conv", "Gemm"))
    images, _ = model_zoo.digits("test")
    difference = np.abs(_outputs(tmp_path / "normalized.onnx", images) - _outputs(constant_cnn, images))
    assert difference.max() <= 1e-5 and normalization["max_abs_difference"] <= 1e-5
    # The canonical model is the upload's graph: it stays the evaluation baseline.
    assert [n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node] == [
        n.op_type for n in uploaded.node
    ]


def test_free_dims_written_as_minus_one_get_names(cnn_onnx: Path, tmp_path: Path) -> None:
    """paddle2onnx writes a free batch as -1; the bridge and input generators need a named dim."""
    model = onnx.load(str(cnn_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    onnx.save(model, str(tmp_path / "minus_one.onnx"))
    record = ingest_model(
        tmp_path / "minus_one.onnx",
        tmp_path / "m.onnx",
        tmp_path / "work",
        normalized_path=tmp_path / "n.onnx",
    )
    assert (
        record["normalization"]["applied"] is True
        and record["normalization"]["changes"]["free_dims_named"] >= 1
    )
    assert record["signature"]["inputs"][0]["shape"][0] is None
    dim = onnx.load(str(tmp_path / "n.onnx")).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "x_dim0" and not dim.HasField("dim_value")


def test_a_clean_graph_is_left_alone(cnn_onnx: Path, tmp_path: Path) -> None:
    record = ingest_model(
        cnn_onnx, tmp_path / "model.onnx", tmp_path / "work", normalized_path=tmp_path / "normalized.onnx"
    )
    assert record["normalization"]["applied"] is False
    assert record["normalization"]["note"] == "the graph was already normalized"
    assert not (tmp_path / "normalized.onnx").exists()


def test_changed_outputs_are_named_and_refused(cnn_onnx: Path, mlp_onnx: Path) -> None:
    """The equivalence check refuses a graph that computes something else (normalization then falls back)."""
    original, other = onnx.load(str(cnn_onnx)), onnx.load(str(mlp_onnx))
    verdict = compare_outputs(original, other, signature(original))
    assert verdict.problem is not None and "output 0 of the normalized graph differs" in verdict.problem
    assert compare_outputs(original, original, signature(original)).max_abs_difference == 0.0


def test_an_identity_ending_an_if_branch_is_kept_and_the_rest_normalized(tmp_path: Path) -> None:
    """silero-vad's If branches end in an Identity of an outer value, which onnx-ir cannot remove."""
    value = helper.make_tensor_value_info
    branch = helper.make_graph(
        [helper.make_node("Identity", ["y"], ["z"])], "branch", [], [value("z", onnx.TensorProto.FLOAT, [2])]
    )
    graph = helper.make_graph(
        [
            _constant("two", np.full(2, 2.0, np.float32)),
            helper.make_node("Add", ["x", "two"], ["y"]),
            helper.make_node("If", ["flag"], ["out"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [value("x", onnx.TensorProto.FLOAT, [2]), value("flag", onnx.TensorProto.BOOL, [])],
        [value("out", onnx.TensorProto.FLOAT, [2])],
    )
    record = _ingest_graph(graph, tmp_path / "if.onnx")
    assert record["normalization"]["applied"] is True
    assert record["normalization"]["changes"]["constants_lifted"] == 1
    normalized = onnx.load(str(tmp_path / "n.onnx"))
    assert [node.op_type for node in normalized.graph.node] == ["Add", "If"]
    session = ort.InferenceSession(str(tmp_path / "n.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.ones(2, np.float32), "flag": np.array(True)})[0]
    assert out.tolist() == [3.0, 3.0]


def test_a_graph_that_runs_on_no_generated_input_is_used_as_uploaded(tmp_path: Path) -> None:
    """Unnamed free dims that must agree: no example size runs it, so nothing checks the result."""
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [
            _constant("one", np.ones(1, np.float32)),
            helper.make_node("Add", ["x", "offset"], ["shifted"]),
            helper.make_node("Add", ["shifted", "one"], ["out"]),
        ],
        "g",
        [value("x", onnx.TensorProto.FLOAT, [None, None]), value("offset", onnx.TensorProto.FLOAT, [None])],
        [value("out", onnx.TensorProto.FLOAT, [None, None])],
    )
    record = _ingest_graph(graph, tmp_path / "unnamed.onnx")
    assert record["normalization"]["applied"] is False
    assert record["normalization"]["note"] == (
        "techniques receive the uploaded graph unchanged: the uploaded model does not run on generated"
        " inputs, so the result could not be checked"
    )
    assert record["normalization"]["note"] in record["warnings"]
    assert not (tmp_path / "n.onnx").exists()


def test_a_model_that_needs_a_long_window_is_checked_at_a_size_it_runs(tmp_path: Path) -> None:
    """A voice detector frames its audio with a 300-sample Conv: 16 or 64 samples do not run it."""
    value = helper.make_tensor_value_info
    window = np.random.default_rng(0).standard_normal((4, 1, 300)).astype(np.float32)
    graph = helper.make_graph(
        [
            _constant("window", window),
            helper.make_node("Conv", ["audio", "window"], ["frames"], strides=[100]),
        ],
        "g",
        [value("audio", onnx.TensorProto.FLOAT, ["batch", 1, "samples"])],
        [value("frames", onnx.TensorProto.FLOAT, ["batch", 4, "steps"])],
    )
    record = _ingest_graph(graph, tmp_path / "framed.onnx")
    assert record["normalization"]["applied"] is True, record["normalization"]["note"]
    assert record["normalization"]["changes"]["constants_lifted"] == 1


def _ingest_graph(graph: onnx.GraphProto, path: Path) -> dict:
    """Save the graph at opset 17 and ingest it, normalized to n.onnx beside it."""
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    folder = path.parent
    return ingest_model(path, folder / "model.onnx", folder / "work", normalized_path=folder / "n.onnx")


def _constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(array, name))


@pytest.fixture(scope="module")
def padded_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNN padding before its convolutions; the exporter writes each Pad's fill as an empty input."""
    torch.manual_seed(0)
    return model_zoo.export_onnx(PaddedCNN().eval(), tmp_path_factory.mktemp("padded") / "padded.onnx")


def _pad_inputs(path: Path) -> list[list[str]]:
    return [list(node.input) for node in onnx.load(str(path)).graph.node if node.op_type == "Pad"]


@pytest.mark.parametrize("form", ["empty", "absent"])
def test_bridge_round_trip_keeps_the_original_pad_form(form: str, padded_cnn: Path, tmp_path: Path) -> None:
    """No explicit zero fill is added: onnxruntime fuses Pad into Conv by that form, and speed with it."""
    model = onnx.load(str(padded_cnn))
    assert all(
        len(node.input) == 3 and node.input[2] == "" for node in model.graph.node if node.op_type == "Pad"
    )
    if form == "absent":
        for node in model.graph.node:
            if node.op_type == "Pad":
                del node.input[2:]
    original = tmp_path / "original.onnx"
    onnx.save(model, str(original))
    exported = to_onnx(from_onnx(original), tmp_path / "back.onnx")
    assert [inputs[2:] for inputs in _pad_inputs(exported)] == [
        inputs[2:] for inputs in _pad_inputs(original)
    ]
    images, _ = model_zoo.digits("test")
    assert np.abs(_outputs(exported, images) - _outputs(original, images)).max() <= 1e-5


def test_normalization_keeps_empty_pad_fills(padded_cnn: Path, tmp_path: Path) -> None:
    """The serializer drops trailing empty inputs; normalization puts a Pad's '' fill back."""
    source = constant_weights(padded_cnn, tmp_path / "constant_padded.onnx")
    record = ingest_model(source, tmp_path / "m.onnx", tmp_path / "work", normalized_path=tmp_path / "n.onnx")
    assert record["normalization"]["applied"] is True
    pads = _pad_inputs(tmp_path / "n.onnx")
    assert pads and all(len(inputs) == 3 and inputs[2] == "" for inputs in pads)
