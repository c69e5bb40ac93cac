"""The ONNX <-> torch bridge on whole models: round trips are exact, unsupported ops are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from torch import nn

from engine.bridge import from_onnx, to_onnx
from engine.contract import TechniqueError
from tests import model_zoo
from tests.worker import bridge_models

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, mlp: nn.Module, cnn: nn.Module) -> dict[str, Path]:
    """The four test architectures as ONNX files (the last two keep batch norm as its own node)."""
    folder = tmp_path_factory.mktemp("bridge")
    return {
        "mlp": model_zoo.export_onnx(mlp, folder / "mlp.onnx"),
        "residual-cnn": model_zoo.export_onnx(cnn, folder / "cnn.onnx"),
        "concat-cnn": bridge_models.export(bridge_models.trained("concat"), folder / "concat.onnx"),
        "encoder": bridge_models.export(bridge_models.trained("encoder"), folder / "encoder.onnx"),
    }


def _run(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.parametrize("name", ["mlp", "residual-cnn", "concat-cnn", "encoder"])
def test_round_trip_reproduces_outputs(name: str, models: dict[str, Path], tmp_path: Path) -> None:
    """Bridged module and re-exported ONNX match the original within 1e-5, at other batch sizes too."""
    images, _ = model_zoo.digits("test")
    expected = _run(models[name], images)
    module = from_onnx(models[name])
    with torch.no_grad():
        bridged = module(torch.from_numpy(images))
    assert isinstance(bridged, torch.Tensor)
    # torch and onnxruntime sum in different orders: allow 1e-5 plus a few ulps of large logits.
    np.testing.assert_allclose(bridged.numpy(), expected, rtol=1e-6, atol=TOLERANCE)
    exported = to_onnx(module, tmp_path / "back.onnx")
    for batch in (1, 7, len(images)):
        assert np.abs(_run(exported, images[:batch]) - expected[:batch]).max() <= TOLERANCE


@pytest.mark.parametrize("name", ["mlp", "concat-cnn", "encoder"])
def test_export_keeps_names_and_symbolic_batch(name: str, models: dict[str, Path], tmp_path: Path) -> None:
    """Input and output names, weighted nodes' names and the symbolic batch dim survive the round trip."""
    original = onnx.load(str(models[name])).graph
    exported = onnx.load(str(to_onnx(from_onnx(models[name]), tmp_path / "back.onnx"))).graph
    for before, after in ((original.input, exported.input), (original.output, exported.output)):
        assert [v.name for v in after] == [v.name for v in before]
        assert [v.type.tensor_type.shape.dim[0].dim_param for v in after] == [
            v.type.tensor_type.shape.dim[0].dim_param for v in before
        ]
    # Later steps select nodes and reports chart layers by these names.
    weighted = [{n.name for n in g.node if n.op_type in ("Conv", "Gemm")} for g in (original, exported)]
    assert weighted[1] == weighted[0] and weighted[0]


def test_weighted_nodes_become_nn_layers(models: dict[str, Path]) -> None:
    """Conv, Gemm/MatMul by a constant (with its bias Add), batch norm and layer norm are real layers."""
    kinds = {
        name: sorted({type(layer).__name__ for layer in from_onnx(path).layers.values()})
        for name, path in models.items()
    }
    assert kinds["mlp"] == ["Linear"]
    assert kinds["residual-cnn"] == ["Conv2d", "Linear"]
    assert kinds["concat-cnn"] == ["BatchNorm2d", "Conv2d", "Linear"]
    assert kinds["encoder"] == ["LayerNorm", "Linear"]
    encoder = from_onnx(models["encoder"])
    assert not [s for s in encoder.steps if s.op == "Add" and any("bias" in i for i in s.inputs)]


def test_bridged_module_trains(models: dict[str, Path]) -> None:
    """Gradients reach every layer weight, and a step changes the outputs."""
    module = from_onnx(models["concat-cnn"]).train()
    images, labels = (torch.from_numpy(a[:32]) for a in model_zoo.digits("train"))
    loss = nn.functional.cross_entropy(module(images), labels)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def _model_with(ops: list[tuple[str, str]]) -> onnx.ModelProto:
    """x -> Relu -> the given (domain, op) nodes chained -> y."""
    nodes = [helper.make_node("Relu", ["x"], ["t0"])]
    for i, (domain, op) in enumerate(ops):
        nodes.append(helper.make_node(op, [f"t{i}"], [f"t{i + 1}"], domain=domain))
    nodes.append(helper.make_node("Identity", [f"t{len(ops)}"], ["y"]))
    value = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    return helper.make_model(helper.make_graph(nodes, "g", [value], [out]), opset_imports=opsets)


def test_unsupported_ops_are_all_listed_at_once() -> None:
    """Every unsupported op type is named, sorted and de-duplicated, before anything is built."""
    model = _model_with([("", "TopK"), ("com.example", "Fancy"), ("", "Hardmax"), ("", "TopK")])
    with pytest.raises(TechniqueError) as caught:
        from_onnx(model)
    assert caught.value.slug == "unsupported-ops"
    assert caught.value.extensions["ops"] == ["Hardmax", "TopK", "com.example.Fancy"]
    assert "Hardmax, TopK, com.example.Fancy" in caught.value.detail


def test_unsupported_op_settings_are_named() -> None:
    """A supported op type with a setting torch cannot reproduce is reported with the reason."""
    resize = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic")
    scales = helper.make_tensor("s", onnx.TensorProto.FLOAT, [4], [1, 1, 2, 2])
    value = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 2, 2])
    body = helper.make_graph([resize], "g", [value], [helper.make_empty_tensor_value_info("y")], [scales])
    with pytest.raises(TechniqueError) as caught:
        from_onnx(helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)]))
    assert caught.value.extensions["ops"] == ["Resize"]
    assert "cubic" in caught.value.detail
