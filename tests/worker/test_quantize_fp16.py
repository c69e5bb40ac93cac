"""quantize.fp16: float16 weights, float32 interface, sensitive ops in float32, loadable by onnxruntime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.quantize import fp16 as quantize_fp16
from service.catalog.quantize_fp16 import FP16_TECHNIQUES, Fp16Params
from tests import model_zoo


def _convert(model: Path, tmp_path: Path, **params: Any) -> tuple[StepOutcome, Path]:
    output = tmp_path / "fp16.onnx"
    outcome = quantize_fp16.run(model, output, Fp16Params(**params), StepContext(workdir=tmp_path))
    return outcome, output


def _logits(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": model_zoo.digits()[0]})[0], dtype=np.float64)


def _graph_model(nodes: list[onnx.NodeProto], *initializers: np.ndarray) -> onnx.ModelProto:
    """A float32 model from x [batch, 3, 4] to y, written with onnx.helper."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(array, f"w{i}") for i, array in enumerate(initializers)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _runs_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    # A child process, because the failure this guards against is a segfault inside onnxruntime.
    script = (
        "import sys, numpy as np, onnxruntime as ort;"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']);"
        "s.run(None, {'x': np.ones((2, 3, 4), np.float32)})"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("model", ["cnn_onnx", "mlp_onnx"])
def test_fp16_keeps_float32_interface_and_outputs(
    model: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    original: Path = request.getfixturevalue(model)
    outcome, output = _convert(original, tmp_path)
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    assert [meta.type for meta in (*session.get_inputs(), *session.get_outputs())] == ["tensor(float)"] * 2
    weights = [t for t in onnx.load(str(output)).graph.initializer if len(t.dims) > 1]
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    assert outcome.metrics["float16_initializers"] >= len(weights)
    assert output.stat().st_size < 0.6 * original.stat().st_size
    before, after = _logits(original), _logits(output)
    cosine = np.sum(before * after, 1) / (np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1))
    assert cosine.mean() > 0.999
    assert any("not faster on a CPU" in warning for warning in outcome.warnings)


def test_block_list_keeps_softmax_in_float32(tmp_path: Path) -> None:
    weight = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h"], name="mm"),
        helper.make_node("Softmax", ["h"], ["y"], name="softmax", axis=-1),
    ]
    source = tmp_path / "softmax.onnx"
    onnx.save(_graph_model(nodes, weight), str(source))

    def softmax_input_type(**params: Any) -> int:
        _, output = _convert(source, tmp_path, **params)
        graph = onnx.shape_inference.infer_shapes(onnx.load(str(output))).graph
        softmax = next(node for node in graph.node if node.op_type == "Softmax")
        types = {value.name: value.type.tensor_type.elem_type for value in (*graph.value_info, *graph.input)}
        return types[softmax.input[0]]

    assert softmax_input_type() == TensorProto.FLOAT
    assert softmax_input_type(op_block_list=[]) == TensorProto.FLOAT16


def test_tensor_feeding_two_blocked_nodes_gives_a_valid_model(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sqrt", ["r"], ["s1"], name="sqrt1"),
        helper.make_node("Sqrt", ["r"], ["s2"], name="sqrt2"),
        helper.make_node("Add", ["s1", "s2"], ["y"], name="add"),
    ]
    source = tmp_path / "fanout.onnx"
    onnx.save(_graph_model(nodes), str(source))
    _, output = _convert(source, tmp_path)
    onnx.checker.check_model(onnx.load(str(output)), full_check=True)
    assert _runs_in_child(output).returncode == 0


def test_transpose_into_matmul_does_not_crash_onnxruntime(tmp_path: Path) -> None:
    weight = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    # Unnamed, as exporters often leave them: only the Transpose may be kept in float32.
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["t", "w0"], ["y"]),
    ]
    source = tmp_path / "transpose.onnx"
    onnx.save(_graph_model(nodes, weight), str(source))
    _, output = _convert(source, tmp_path)
    done = _runs_in_child(output)
    assert done.returncode == 0, done.stderr
    (stored,) = onnx.load(str(output)).graph.initializer
    assert stored.data_type == TensorProto.FLOAT16


def _batchnorm_with_huge_variance(as_constants: bool) -> onnx.ModelProto:
    """Conv then BatchNormalization whose running variance (1e7) float16 cannot hold, as some
    converters export (paddle2onnx's PP-OCR detector has such channels); weights as initializers or
    as Constant nodes."""
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(0, 1, (4, 3, 1, 1)).astype(np.float32) * 30,
        "scale": rng.uniform(0.5, 2, 4).astype(np.float32),
        "bias": rng.normal(0, 1, 4).astype(np.float32),
        "mean": rng.normal(0, 10, 4).astype(np.float32),
        "var": np.array([1e7, 4e6, 1.0, 2e5], np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"], name="bn"),
    ]
    initializers = [numpy_helper.from_array(value, name) for name, value in weights.items()]
    if as_constants:
        nodes = [
            helper.make_node("Constant", [], [t.name], value=t, name=f"const_{t.name}") for t in initializers
        ] + nodes
        initializers = []
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@pytest.mark.parametrize("as_constants", [False, True], ids=["initializers", "constant-nodes"])
def test_weights_beyond_float16_range_keep_their_node_in_float32(tmp_path: Path, as_constants: bool) -> None:
    source = tmp_path / "huge.onnx"
    onnx.save(_batchnorm_with_huge_variance(as_constants), str(source))
    outcome, output = _convert(source, tmp_path)

    x = {"x": np.random.default_rng(1).normal(0, 1, (2, 3, 4, 4)).astype(np.float32)}
    expected, converted = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, x)[0]
        for path in (source, output)
    )
    # Clipping the variance to 65504 would scale three channels by up to 12x.
    np.testing.assert_allclose(converted, expected, rtol=1e-2, atol=2e-2)
    assert any(warning.startswith("1 nodes kept in float32") for warning in outcome.warnings)
    converted_model = onnx.load(str(output))
    kept = {t.name: t.data_type for t in converted_model.graph.initializer}
    assert kept["var"] == TensorProto.FLOAT  # lifted from its Constant node when it had one
    assert any(node.op_type == "Conv" and node.name == "conv" for node in converted_model.graph.node)


def test_unknown_excluded_node_is_refused(mlp_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(TechniqueError) as raised:
        _convert(mlp_onnx, tmp_path, nodes_to_exclude=["no-such-node"])
    assert raised.value.slug == "invalid-params"
    assert "no-such-node" in raised.value.detail
    (spec,) = FP16_TECHNIQUES
    assert spec.name == "quantize.fp16"


def test_a_blocked_node_inside_an_if_branch_gives_a_valid_model(tmp_path: Path) -> None:
    """silero-vad: the converter put the branch's float32 Cast in the main graph ('not a graph input')."""
    out = helper.make_tensor_value_info
    then_branch = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "w0"], ["doubled"], name="double"),
            helper.make_node("Max", ["doubled", "x"], ["then_y"], name="blocked_max"),
        ],
        "then",
        [],
        [out("then_y", TensorProto.FLOAT, ["batch", 3, 4])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["else_y"], name="relu")],
        "else",
        [],
        [out("else_y", TensorProto.FLOAT, ["batch", 3, 4])],
    )
    nodes = [
        helper.make_node("If", ["w1"], ["y"], name="branch", then_branch=then_branch, else_branch=else_branch)
    ]
    source = tmp_path / "branched.onnx"
    onnx.save(_graph_model(nodes, np.full((3, 4), 2.0, np.float32), np.array(True)), str(source))

    _, output = _convert(source, tmp_path)

    converted = onnx.load(str(output))
    onnx.checker.check_model(converted, full_check=True)
    branch = next(node for node in converted.graph.node if node.op_type == "If")
    then_nodes = next(attribute.g for attribute in branch.attribute if attribute.name == "then_branch").node
    # Max stays float32 (onnxruntime's block list): the Cast of its float16 input lives in its branch.
    assert [node.op_type for node in then_nodes] == ["Mul", "Cast", "Max", "Cast"]
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    y = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, np.maximum(2 * x, x), rtol=1e-3, atol=1e-3)
