"""Gemm projections (GPT-2's Conv1D exports as Gemm) become MatMul + Add, so weight-only reaches them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.techniques.quantize.gemm_as_matmul import rewrite_gemms


def _gemm_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Four Gemms reading x [batch, 16]: plain, transB with bias, scaled, and transA (left alone)."""
    weight = rng.standard_normal((16, 8)).astype(np.float32)
    square = rng.standard_normal((16, 16)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["plain"], name="plain"),
        helper.make_node("Gemm", ["x", "wt", "b"], ["transposed"], name="transposed", transB=1),
        helper.make_node("Gemm", ["x", "w", "b"], ["scaled"], name="scaled", alpha=0.5, beta=2.0),
        helper.make_node("Gemm", ["x", "square"], ["left_transposed"], name="left_transposed", transA=1),
    ]
    initializers = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.ascontiguousarray(weight.T), "wt"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
        numpy_helper.from_array(square, "square"),
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        for name, shape in (("plain", [16, 8]), ("transposed", [16, 8]), ("scaled", [16, 8]),
                            ("left_transposed", [16, 16]))
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 16])], outputs, initializers
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(value) for value in session.run(None, {"x": x})]


def test_gemms_with_a_constant_weight_become_matmul_and_add_with_the_same_outputs() -> None:
    rng = np.random.default_rng(0)
    model = _gemm_model(rng)
    x = rng.standard_normal((16, 16)).astype(np.float32)
    expected = _run(model, x)

    assert rewrite_gemms(model) == 3

    onnx.checker.check_model(model)
    ops = {node.name: node.op_type for node in model.graph.node}
    assert ops["plain"] == ops["transposed"] == ops["scaled"] == "MatMul"
    assert ops["left_transposed"] == "Gemm"  # transA: not a weight on the right
    for got, want in zip(_run(model, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The replaced weights and bias are gone; the transA node's stays.
    assert {tensor.name for tensor in model.graph.initializer} >= {"square"}
    assert not {"w", "wt", "b"} & {tensor.name for tensor in model.graph.initializer}


def test_an_excluded_gemm_stays_as_it_is() -> None:
    model = _gemm_model(np.random.default_rng(1))
    assert rewrite_gemms(model, excluded={"plain", "scaled", "transposed"}) == 0
    assert [node.op_type for node in model.graph.node] == ["Gemm"] * 4


@pytest.fixture(scope="module")
def gpt2_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer GPT-2 (random weights) exported with its KV cache: its projections are Gemms."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.decoder_export import export_decoder

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256, n_positions=128)
    model = GPT2LMHeadModel(config)
    return export_decoder(model, tmp_path_factory.mktemp("gpt2") / "gpt2.onnx")


def test_weight_only_quantizes_every_projection_of_a_gpt2_export(gpt2_onnx: Path, tmp_path: Path) -> None:
    from engine.contract import StepContext
    from engine.evaluate.decoder_feeds import step_feeds
    from engine.ingest.summary import summarize
    from engine.techniques.quantize import weight_only
    from service.catalog.quantize_weight_only import WeightOnlyParams

    original = onnx.load(str(gpt2_onnx))
    assert sum(node.op_type == "Gemm" for node in original.graph.node) == 8  # 4 per layer
    layout = summarize(original, "onnx")["signature"]["decoder"]
    output = tmp_path / "int4.onnx"

    outcome = weight_only.run(
        gpt2_onnx,
        output,
        WeightOnlyParams(block_size=32, float_zero_points=True),
        StepContext(workdir=tmp_path),
    )

    # The 8 projections and the output head.
    assert outcome.metrics["gemm_nodes_as_matmul"] == 8 and outcome.metrics["quantized_nodes"] == 9
    ids = np.random.default_rng(2).integers(0, 256, (2, 12))
    feeds = step_feeds(layout, ids, np.ones_like(ids))
    logits = [
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0].ravel()
        for path in (gpt2_onnx, output)
    ]
    cosine = float(logits[0] @ logits[1] / np.linalg.norm(logits[0]) / np.linalg.norm(logits[1]))
    assert cosine > 0.99, cosine
