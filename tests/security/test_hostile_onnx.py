"""Hostile ONNX graphs at ingest: local functions are judged by their contents, every subgraph is
checked, and refusals are short messages of ours (no paths, no library internals)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine.contract import TechniqueError
from engine.ingest import ingest_model
from engine.ingest.safety import ALLOWED_DOMAINS, iter_nodes

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
STANDARD = helper.make_opsetid("", 17)
PATH_LIKE = re.compile(r"(^|[\s'\"(])/[\w.-]+/")


def _model(
    nodes: list[onnx.NodeProto], functions: list[onnx.FunctionProto] = (), **kwargs: Any
) -> onnx.ModelProto:
    domains = {node.domain for node in nodes} | {f.domain for f in functions}
    opsets = [STANDARD, *(helper.make_opsetid(d, 1) for d in sorted(domains - {""}))]
    graph = helper.make_graph(nodes, "g", kwargs.pop("inputs", [X]), [Y])
    return helper.make_model(graph, opset_imports=kwargs.pop("opsets", opsets), functions=list(functions),
                             ir_version=kwargs.pop("ir_version", 10))  # fmt: skip


def _function(
    domain: str, name: str, body: list[onnx.NodeProto], extra_domains: tuple[str, ...] = ()
) -> onnx.FunctionProto:
    opsets = [STANDARD, *(helper.make_opsetid(d, 1) for d in extra_domains)]
    return helper.make_function(domain, name, ["x"], ["y"], body, opsets)


def _relu_named(domain: str, name: str) -> onnx.FunctionProto:
    return _function(domain, name, [helper.make_node("Relu", ["x"], ["y"])])


def _ingest(model: onnx.ModelProto, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    upload, output = tmp_path / "upload.onnx", tmp_path / "canonical.onnx"
    onnx.save(model, upload)
    return ingest_model(upload, output, tmp_path / "work"), output


def _refused(model: onnx.ModelProto, tmp_path: Path) -> TechniqueError:
    with pytest.raises(TechniqueError) as caught:
        _ingest(model, tmp_path)
    refusal = caught.value
    assert not PATH_LIKE.search(refusal.detail), refusal.detail
    assert "StopIteration" not in refusal.detail and "onnxruntime_src" not in refusal.detail
    assert len(refusal.detail) < 400
    return refusal


def _standard_only(canonical: Path) -> None:
    model = onnx.load(str(canonical))
    assert not model.functions
    assert {node.domain for node in iter_nodes(model)} <= ALLOWED_DOMAINS


def _outputs(canonical: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(canonical), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


SAMPLE = np.array([[-1.0, 0.5, 2.0, -3.0], [0.25, -0.5, 1.5, -2.0]], dtype=np.float32)


@pytest.mark.parametrize(
    ("domain", "name"),
    [("com.microsoft", "Gelu"), ("com.microsoft", "FastGelu"), ("com.microsoft", "BiasGelu"), ("", "Gelu"),
     ("com.microsoft", "QuickGelu"), ("custom.domain", "Relu")],
)  # fmt: skip
def test_a_local_function_runs_as_its_body_whatever_its_name(domain: str, name: str, tmp_path: Path) -> None:
    node = helper.make_node(name, ["x"], ["y"], domain=domain)

    _, canonical = _ingest(_model([node], [_relu_named(domain, name)]), tmp_path)

    _standard_only(canonical)
    np.testing.assert_array_equal(_outputs(canonical, SAMPLE), np.maximum(SAMPLE, 0))


def test_nested_local_functions_are_resolved(tmp_path: Path) -> None:
    inner = _relu_named("com.microsoft", "Gelu")
    outer = _function("pkg.outer", "Wrap", [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")],
                      ("com.microsoft",))  # fmt: skip
    node = helper.make_node("Wrap", ["x"], ["y"], domain="pkg.outer")

    _, canonical = _ingest(_model([node], [outer, inner]), tmp_path)

    _standard_only(canonical)
    np.testing.assert_array_equal(_outputs(canonical, SAMPLE), np.maximum(SAMPLE, 0))


def _if_node(branch_nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    branch = helper.make_graph(branch_nodes, "branch", [], [Y])
    keep = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "keep", [], [Y])
    reduced = helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)
    positive = helper.make_node("Greater", ["total", "zero"], ["cond"])
    zero = helper.make_node(
        "Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])
    )
    return [
        reduced,
        zero,
        positive,
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=keep),
    ]


def test_a_local_function_called_inside_a_subgraph_is_resolved_or_refused(tmp_path: Path) -> None:
    call = helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")
    model = _model(_if_node([call]), [_relu_named("com.microsoft", "Gelu")])

    try:
        _, canonical = _ingest(model, tmp_path)
    except TechniqueError as refusal:
        assert refusal.slug in ("unsafe-model", "invalid-model")
        return
    _standard_only(canonical)


@pytest.mark.parametrize("op", ["Gelu", "EPContext", "FusedMatMul"])
def test_a_contrib_op_in_a_function_body_is_refused(op: str, tmp_path: Path) -> None:
    body = [helper.make_node(op, ["x"], ["y"], domain="com.microsoft")]
    function = _function("pkg.local", "Innocent", body, ("com.microsoft",))
    node = helper.make_node("Innocent", ["x"], ["y"], domain="pkg.local")

    assert _refused(_model([node], [function]), tmp_path).slug == "unsafe-model"


def test_a_contrib_op_deep_in_loop_and_scan_bodies_is_refused(tmp_path: Path) -> None:
    hidden = helper.make_node("Gelu", ["s_in"], ["s_out"], domain="com.microsoft")
    state = helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [4])
    passed_on = helper.make_node("Identity", ["s_out"], ["s_next"])
    next_state = helper.make_tensor_value_info("s_next", TensorProto.FLOAT, [4])
    scan_body = helper.make_graph([hidden, passed_on], "scan", [state], [next_state])
    scan = helper.make_node("Scan", ["carried"], ["carried_out"], body=scan_body, num_scan_inputs=0)
    loop_body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), scan],
        "loop",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carried", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carried_out", TensorProto.FLOAT, [4])],
    )  # fmt: skip
    loop = helper.make_node("Loop", ["", "", "x"], ["y"], body=loop_body)
    model = _model(_if_node([loop]), opsets=[STANDARD, helper.make_opsetid("com.microsoft", 1)])

    assert _refused(model, tmp_path).slug == "unsafe-model"


@pytest.mark.parametrize("opset", [99, 10_000, 0])
def test_an_opset_no_onnx_defines_is_refused_without_paths(opset: int, tmp_path: Path) -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], opsets=[helper.make_opsetid("", opset)])

    refusal = _refused(model, tmp_path)

    assert refusal.slug == "invalid-model" and str(opset) in refusal.detail


@pytest.mark.parametrize(
    "kwargs",
    [{"opsets": [helper.make_opsetid("", onnx.defs.onnx_opset_version())]}, {"ir_version": 99}],
    ids=["newest-onnx-opset", "ir-version-99"],
)
def test_what_onnxruntime_cannot_load_is_refused_at_ingest_without_paths(
    kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], **kwargs)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime refuses it: ingest must, with our words
        assert _refused(model, tmp_path).slug in ("invalid-model", "unsupported-format")
    else:  # this onnxruntime loads it: ingest accepts it
        _ingest(model, tmp_path)


def test_a_model_without_inputs_is_refused_clearly(tmp_path: Path) -> None:
    constant = helper.make_node(
        "Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [2, 4], [1.0] * 8)
    )

    refusal = _refused(_model([constant], inputs=[]), tmp_path)

    assert refusal.slug == "invalid-model" and "no inputs" in refusal.detail
