"""prune.magnitude on real models: target sparsity per layer or globally, selection, valid output."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.prune import magnitude as prune_magnitude
from service.catalog.prune import MagnitudePruneParams
from tests import model_zoo
from tests.worker import bridge_models


def weights(path: Path) -> dict[str, np.ndarray]:
    """Weight (input 1) of every Conv / Gemm / MatMul node that has an initializer there, by node name."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.name: inits[n.input[1]]
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in inits
    }


def sparsity(array: np.ndarray) -> float:
    """Fraction of exact zeros."""
    return float(np.count_nonzero(array == 0)) / array.size


def prune(source: Path, target: Path, **params: object) -> StepOutcome:
    """Run the technique with the given parameters."""
    return prune_magnitude.run(
        source, target, MagnitudePruneParams.model_validate(params), StepContext(workdir=target.parent)
    )


def test_per_layer_hits_target_in_every_layer(cnn_onnx: Path, tmp_path: Path) -> None:
    """Each layer reaches the sparsity (to one weight), metrics match the file, onnxruntime runs it."""
    outcome = prune(cnn_onnx, tmp_path / "out.onnx", sparsity=0.6)
    pruned = weights(tmp_path / "out.onnx")
    assert set(pruned) == set(outcome.metrics["per_layer_sparsity"]) and len(pruned) == 3
    for name, array in pruned.items():
        assert abs(sparsity(array) - 0.6) <= 1 / array.size
        assert outcome.metrics["per_layer_sparsity"][name] == pytest.approx(sparsity(array), abs=1e-6)
    session = ort.InferenceSession(str(tmp_path / "out.onnx"))
    images, _ = model_zoo.digits("test")
    assert session.run(None, {"x": images[:5]})[0].shape == (5, 10)
    assert any("no faster" in w for w in outcome.warnings)


def test_global_prunes_smallest_weights_across_layers(mlp_onnx: Path, tmp_path: Path) -> None:
    """One threshold for all layers: overall target met, every removed |w| <= every kept |w|."""
    outcome = prune(mlp_onnx, tmp_path / "out.onnx", sparsity=0.7, scope="global")
    before, after = weights(mlp_onnx), weights(tmp_path / "out.onnx")
    removed = np.concatenate([np.abs(before[n][(after[n] == 0) & (before[n] != 0)]) for n in before])
    kept = np.concatenate([np.abs(before[n][after[n] != 0]) for n in before])
    total = sum(a.size for a in after.values())
    zeros = sum(np.count_nonzero(a == 0) for a in after.values())
    assert abs(zeros / total - 0.7) <= 1 / total
    assert outcome.metrics["overall_sparsity"] == pytest.approx(zeros / total, abs=1e-6)
    assert removed.max() <= kept.min()
    assert len({round(s, 3) for s in outcome.metrics["per_layer_sparsity"].values()}) > 1


def test_selection_by_op_type_and_node_name(cnn_onnx: Path, tmp_path: Path) -> None:
    """Only selected op types and names are pruned; the rest is byte-for-byte unchanged."""
    before = weights(cnn_onnx)
    convs = sorted(n for n in before if "Conv" in n)
    prune(cnn_onnx, tmp_path / "a.onnx", sparsity=0.5, op_types=["Conv"], nodes_to_exclude=[convs[0]])
    after = weights(tmp_path / "a.onnx")
    assert sparsity(after[convs[1]]) == pytest.approx(0.5, abs=0.01)
    assert all(np.array_equal(before[n], after[n]) for n in before if n != convs[1])
    prune(cnn_onnx, tmp_path / "b.onnx", sparsity=0.5, nodes_to_include=[convs[0]])
    after = weights(tmp_path / "b.onnx")
    assert [n for n in before if not np.array_equal(before[n], after[n])] == [convs[0]]


def test_matmul_weights_of_an_encoder(tmp_path: Path) -> None:
    """MatMul-by-constant weights (transformer projections) are pruned and the model still runs."""
    source = bridge_models.export(bridge_models.trained("encoder"), tmp_path / "enc.onnx", fold=True)
    outcome = prune(source, tmp_path / "out.onnx", sparsity=0.5, op_types=["MatMul"])
    pruned = weights(tmp_path / "out.onnx")
    matmuls = [n for n in pruned if "MatMul" in n]
    assert len(matmuls) >= 5 and all(abs(sparsity(pruned[n]) - 0.5) <= 1 / pruned[n].size for n in matmuls)
    assert set(outcome.metrics["per_layer_sparsity"]) == set(matmuls)
    images, _ = model_zoo.digits("test")
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"pixels": images[:3]})[0].shape == (
        3,
        10,
    )


def test_a_weight_shared_through_identity_is_reported_for_every_layer(tmp_path: Path) -> None:
    """The exporter stores equal weights once and feeds the second reader through an Identity."""
    torch.manual_seed(0)
    block = torch.nn.Linear(64, 64)
    copied = copy.deepcopy(block)  # as nn.TransformerEncoder copies its first layer into the others
    tied = torch.nn.Sequential(torch.nn.Flatten(), block, torch.nn.ReLU(), copied, torch.nn.Linear(64, 10))
    source = model_zoo.export_onnx(tied.eval(), tmp_path / "tied.onnx")
    assert "Identity" in {node.op_type for node in onnx.load(str(source)).graph.node}
    outcome = prune(source, tmp_path / "out.onnx", sparsity=0.5)
    assert len(outcome.metrics["per_layer_sparsity"]) == 3
    assert all(abs(value - 0.5) < 1e-3 for value in outcome.metrics["per_layer_sparsity"].values())
    images, _ = model_zoo.digits("test")
    assert ort.InferenceSession(str(tmp_path / "out.onnx")).run(None, {"x": images[:3]})[0].shape == (3, 10)


def test_unknown_names_warn_and_empty_selection_fails(cnn_onnx: Path, tmp_path: Path) -> None:
    """A misspelt node name is reported; a selection with no weights is a clear error."""
    outcome = prune(cnn_onnx, tmp_path / "a.onnx", sparsity=0.5, nodes_to_exclude=["/no/such/Conv"])
    assert any("/no/such/Conv" in w for w in outcome.warnings)
    with pytest.raises(TechniqueError) as caught:
        prune(cnn_onnx, tmp_path / "b.onnx", sparsity=0.5, op_types=["MatMul"])
    assert caught.value.slug == "nothing-to-prune"


FINETUNE = {"dataset_id": "train", "epochs": 3, "learning_rate": 1e-2, "batch_size": 32}


@pytest.fixture(scope="module")
def train_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits training split with labels and without."""
    images, labels = model_zoo.digits("train")
    folder = tmp_path_factory.mktemp("magnitude-finetune")
    np.savez(folder / "labelled.npz", x=images, labels=labels)
    np.savez(folder / "unlabelled.npz", x=images)
    return {"labelled": folder / "labelled.npz", "unlabelled": folder / "unlabelled.npz"}


def logits(path: Path) -> np.ndarray:
    """Outputs of a model on the digits test split, from onnxruntime."""
    images, _ = model_zoo.digits("test")
    return ort.InferenceSession(str(path)).run(None, {"x": images})[0]


def top1(path: Path) -> float:
    """Test-split accuracy of an ONNX model."""
    return float((logits(path).argmax(1) == model_zoo.digits("test")[1]).mean())


def finetuned(source: Path, target: Path, data: Path, messages: list[str], **params: object) -> StepOutcome:
    """Run the technique with fine-tuning on `data`, collecting progress messages."""
    ctx = StepContext(
        workdir=target.parent, datasets={"train": data}, progress=lambda _, text: messages.append(text)
    )
    return prune_magnitude.run(source, target, MagnitudePruneParams.model_validate(params), ctx)


def assert_zeros_kept(plain: Path, tuned: Path, outcome: StepOutcome) -> None:
    """Layer by layer (graph order) the tuned file has exactly the plain file's zeros, as its metrics say."""
    before, after = weights(plain), weights(tuned)
    reported = outcome.metrics["per_layer_sparsity"]
    assert list(reported) == list(before) and len(after) == len(before) == 3
    for (node, fraction), old, new in zip(reported.items(), before.values(), after.values(), strict=True):
        assert np.array_equal(new == 0, old == 0), node
        assert fraction == pytest.approx(sparsity(new), abs=1e-6)
        assert sparsity(new) >= 0.9 - 1 / new.size
    zeros = sum(np.count_nonzero(a == 0) for a in after.values())
    assert outcome.metrics["zero_weights"] == zeros
    assert outcome.metrics["pruned_weights"] == sum(a.size for a in after.values())


def test_finetuning_recovers_accuracy_and_keeps_every_zero(
    mlp_onnx: Path, train_sets: dict[str, Path], tmp_path: Path
) -> None:
    """At 90% the MLP collapses; a few epochs on labels bring it back with the same weights at zero."""
    prune(mlp_onnx, tmp_path / "plain.onnx", sparsity=0.9)
    messages: list[str] = []
    outcome = finetuned(
        mlp_onnx, tmp_path / "tuned.onnx", train_sets["labelled"], messages, sparsity=0.9, finetune=FINETUNE
    )
    report = outcome.metrics["finetune"]
    assert report["objective"] == "cross_entropy+distillation"
    assert [epoch["epoch"] for epoch in report["epochs"]] == [1, 2, 3]
    assert report["epochs"][-1]["loss"] < report["epochs"][0]["loss"]
    assert [m for m in messages if m.startswith("epoch ")][-1].startswith("epoch 3/3 loss ")
    assert_zeros_kept(tmp_path / "plain.onnx", tmp_path / "tuned.onnx", outcome)
    assert top1(tmp_path / "tuned.onnx") > top1(tmp_path / "plain.onnx") + 0.1
    assert any("no faster" in w for w in outcome.warnings)


def test_distillation_without_labels_tracks_the_original(
    mlp_onnx: Path, train_sets: dict[str, Path], tmp_path: Path
) -> None:
    """Unlabelled inputs: the pruned MLP learns the original's outputs and still keeps its zeros."""
    prune(mlp_onnx, tmp_path / "plain.onnx", sparsity=0.9)
    outcome = finetuned(
        mlp_onnx, tmp_path / "tuned.onnx", train_sets["unlabelled"], [], sparsity=0.9, finetune=FINETUNE
    )
    assert outcome.metrics["finetune"]["objective"] == "distillation_mse"
    assert_zeros_kept(tmp_path / "plain.onnx", tmp_path / "tuned.onnx", outcome)
    reference = logits(mlp_onnx)
    before = np.mean((logits(tmp_path / "plain.onnx") - reference) ** 2)
    after = np.mean((logits(tmp_path / "tuned.onnx") - reference) ** 2)
    assert after < 0.5 * before
