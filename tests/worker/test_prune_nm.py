"""prune.nm: every group of M weights along the reduction dimension keeps at most N, the largest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.prune import nm as prune_nm
from service.catalog.prune import NMPruneParams
from tests import model_zoo


@pytest.fixture(scope="module")
def matrix_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MatMul by (K, N), Gemm with transB=0 (K, N) and Gemm with transB=1 (N, K)."""
    rng = np.random.default_rng(1)
    inits = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in (("w1", (8, 12)), ("w2", (12, 8)), ("w3", (3, 8)))
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm"),
        helper.make_node("Gemm", ["h", "w2"], ["g"], name="gemm_kn"),
        helper.make_node("Gemm", ["g", "w3"], ["y"], name="gemm_nk", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    path = tmp_path_factory.mktemp("nm") / "matrices.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def by_node(path: Path) -> dict[str, np.ndarray]:
    """Input-1 weight initializer of each node, by node name."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.name: inits[n.input[1]] for n in model.graph.node if len(n.input) > 1 and n.input[1] in inits}


def groups(weight: np.ndarray, layout: str, m: int = 4) -> np.ndarray:
    """Rows of m weights that a sparse kernel reads together, written out independently per layout."""
    if layout == "conv":  # K-R-S-C: input channels innermost
        return weight.transpose(0, 2, 3, 1).reshape(-1, m)
    if layout == "kn":  # reduction along rows: consecutive rows within one output column
        return weight.T.reshape(-1, m)
    return weight.reshape(-1, m)  # "nk": reduction along each row


def prune(source: Path, target: Path, **params: object) -> StepOutcome:
    """Run the technique with the given parameters."""
    return prune_nm.run(
        source, target, NMPruneParams.model_validate(params), StepContext(workdir=target.parent)
    )


def assert_nm(before: np.ndarray, after: np.ndarray, layout: str, n: int) -> None:
    """Each group keeps exactly its n largest-magnitude weights, unchanged, and zeros the rest."""
    old, new = groups(before, layout), groups(after, layout)
    assert (np.count_nonzero(new, axis=1) <= n).all()
    top = np.sort(np.argsort(-np.abs(old), axis=1, kind="stable")[:, :n], axis=1)
    kept = np.sort(np.argsort(new == 0, axis=1, kind="stable")[:, :n], axis=1)
    assert np.array_equal(top, kept)
    assert np.array_equal(np.take_along_axis(new, kept, 1), np.take_along_axis(old, kept, 1))


def test_conv_and_gemm_follow_the_pattern(cnn_onnx: Path, tmp_path: Path) -> None:
    """2:4 along input channels of the conv and K of the head; the 1-channel stem is left dense."""
    outcome = prune(cnn_onnx, tmp_path / "out.onnx")
    before, after = by_node(cnn_onnx), by_node(tmp_path / "out.onnx")
    stem, block = (next(n for n, w in before.items() if w.ndim == 4 and w.shape[1] == c) for c in (1, 16))
    head = next(n for n in before if "Gemm" in n)
    assert_nm(before[block], after[block], "conv", 2)
    assert_nm(before[head], after[head], "nk", 2)
    assert np.array_equal(before[stem], after[stem])
    assert stem in outcome.metrics["skipped_layers"] and any(stem in w for w in outcome.warnings)
    assert outcome.metrics["all_valid"] and set(outcome.metrics["layers"]) == {block, head}
    images, _ = model_zoo.digits("test")
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"x": images[:4]})[0].shape == (4, 10)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_weight_orientation_of_matmul_and_gemm(matrix_onnx: Path, tmp_path: Path, n: int) -> None:
    """MatMul and Gemm(transB=0) group down columns, Gemm(transB=1) along rows."""
    outcome = prune(matrix_onnx, tmp_path / "out.onnx", n=n, m=4)
    before, after = by_node(matrix_onnx), by_node(tmp_path / "out.onnx")
    for name, layout in (("mm", "kn"), ("gemm_kn", "kn"), ("gemm_nk", "nk")):
        assert_nm(before[name], after[name], layout, n)
        assert outcome.metrics["layers"][name]["sparsity"] == pytest.approx(1 - n / 4)
    assert outcome.metrics["overall_sparsity"] == pytest.approx(1 - n / 4)


def test_no_eligible_layer_is_an_error(cnn_onnx: Path, tmp_path: Path) -> None:
    """Selecting only layers whose reduction dim does not fit M fails with the reason."""
    stem = next(n for n, w in by_node(cnn_onnx).items() if w.ndim == 4 and w.shape[1] == 1)
    with pytest.raises(TechniqueError) as caught:
        prune(cnn_onnx, tmp_path / "out.onnx", nodes_to_include=[stem])
    assert caught.value.slug == "nothing-to-prune"
    assert "not a multiple of 4" in caught.value.detail


def test_n_must_be_below_m() -> None:
    """The catalog refuses patterns that prune nothing."""
    with pytest.raises(ValueError, match="n must be smaller than m"):
        NMPruneParams(n=4, m=4)


def reduction_weights(path: Path) -> list[tuple[np.ndarray, int]]:
    """(weight, axis summed over) of each Conv / Gemm / MatMul with a constant weight, in graph order."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and node.input[1] in inits:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            found.append((inits[node.input[1]], 1 if node.op_type == "Conv" or trans_b else 0))
    return found


def finetuned(source: Path, target: Path, data: Path, **params: object) -> StepOutcome:
    """Run the technique with fine-tuning on the dataset `data`."""
    ctx = StepContext(workdir=target.parent, datasets={"train": data})
    return prune_nm.run(source, target, NMPruneParams.model_validate(params), ctx)


def outputs(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """First output of a model, from onnxruntime."""
    return ort.InferenceSession(str(path)).run(None, inputs)[0]


def test_finetuning_keeps_two_of_four_and_recovers_accuracy(cnn_onnx: Path, tmp_path: Path) -> None:
    """Trained on labels, each pruned conv / gemm weight in the file is still 2:4, and accuracy is up."""
    images, labels = model_zoo.digits("train")
    np.savez(tmp_path / "train.npz", x=images, labels=labels)
    plain = prune(cnn_onnx, tmp_path / "plain.onnx")
    finetune = {"dataset_id": "train", "epochs": 3, "learning_rate": 1e-2}
    outcome = finetuned(cnn_onnx, tmp_path / "tuned.onnx", tmp_path / "train.npz", finetune=finetune)
    assert [epoch["epoch"] for epoch in outcome.metrics["finetune"]["epochs"]] == [1, 2, 3]
    stem, block, head = reduction_weights(tmp_path / "tuned.onnx")
    assert stem[0].shape[1] == 1 and block[0].shape[1] == 16 and head[0].shape == (10, 64)
    for weight, axis in (block, head):
        assert prune_nm.nm_valid(weight, axis, 2, 4)
        assert np.count_nonzero(weight == 0) >= weight.size // 2
    layers = outcome.metrics["layers"]
    assert outcome.metrics["all_valid"] and list(layers) == list(plain.metrics["layers"])
    assert [layer["sparsity"] for layer in layers.values()] == pytest.approx(
        [np.count_nonzero(w == 0) / w.size for w, _ in (block, head)], abs=1e-6
    )
    test_images, test_labels = model_zoo.digits("test")
    accuracy = {
        name: float((outputs(tmp_path / name, {"x": test_images}).argmax(1) == test_labels).mean())
        for name in ("plain.onnx", "tuned.onnx")
    }
    assert accuracy["tuned.onnx"] > accuracy["plain.onnx"], accuracy


@pytest.mark.parametrize("n", [1, 2])
def test_distillation_keeps_the_pattern_in_every_weight_layout(
    matrix_onnx: Path, tmp_path: Path, n: int
) -> None:
    """Without labels, MatMul and Gemm (transB 0 and 1) stay N:M along K and move towards the original."""
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "inputs.npz", x=rng.standard_normal((256, 8)).astype(np.float32))
    probe = {"x": rng.standard_normal((64, 8)).astype(np.float32)}
    prune(matrix_onnx, tmp_path / "plain.onnx", n=n, m=4)
    finetune = {"dataset_id": "train", "epochs": 5, "learning_rate": 1e-2, "batch_size": 16}
    outcome = finetuned(
        matrix_onnx, tmp_path / "tuned.onnx", tmp_path / "inputs.npz", n=n, m=4, finetune=finetune
    )
    assert outcome.metrics["finetune"]["objective"] == "distillation_mse"
    stored = reduction_weights(tmp_path / "tuned.onnx")
    assert len(stored) == 3 and all(prune_nm.nm_valid(w, axis, n, 4) for w, axis in stored)
    assert outcome.metrics["all_valid"] and set(outcome.metrics["layers"]) == {"mm", "gemm_kn", "gemm_nk"}
    assert outcome.metrics["overall_sparsity"] == pytest.approx(1 - n / 4)
    reference = outputs(matrix_onnx, probe)
    before = np.mean((outputs(tmp_path / "plain.onnx", probe) - reference) ** 2)
    after = np.mean((outputs(tmp_path / "tuned.onnx", probe) - reference) ** 2)
    assert after < before


def test_batch_norms_folded_by_the_export_keep_the_pattern(cnn: nn.Module, tmp_path: Path) -> None:
    """Batch norms train as layers and the export folds them into the convs: the zeros stay where they are."""
    source = tmp_path / "cnn-bn.onnx"
    torch.onnx.export(
        cnn,
        (torch.zeros(2, 1, 8, 8),),
        str(source),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=False,  # keeps the BatchNormalization nodes
        dynamo=False,
    )
    assert [n.op_type for n in onnx.load(str(source)).graph.node].count("BatchNormalization") == 2
    images, labels = model_zoo.digits("train")
    np.savez(tmp_path / "train.npz", x=images, labels=labels)
    finetune = {"dataset_id": "train", "epochs": 2, "learning_rate": 1e-2}
    outcome = finetuned(source, tmp_path / "tuned.onnx", tmp_path / "train.npz", finetune=finetune)
    tuned = onnx.load(str(tmp_path / "tuned.onnx"))
    assert "BatchNormalization" not in {n.op_type for n in tuned.graph.node}
    _, block, head = reduction_weights(tmp_path / "tuned.onnx")
    assert all(prune_nm.nm_valid(w, axis, 2, 4) for w, axis in (block, head))
    assert [layer["sparsity"] for layer in outcome.metrics["layers"].values()] == pytest.approx(
        [np.count_nonzero(w == 0) / w.size for w, _ in (block, head)], abs=1e-6
    )
