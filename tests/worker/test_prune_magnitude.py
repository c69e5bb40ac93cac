"""prune.magnitude on real models: target sparsity per layer or globally, selection, valid output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from service.catalog.prune import MagnitudePruneParams
from tests import model_zoo
from tests.worker import bridge_models
from worker.techniques import prune_magnitude
from worker.techniques.base import StepContext, TechniqueError


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


def prune(source: Path, target: Path, **params: object) -> prune_magnitude.StepOutcome:
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


def test_unknown_names_warn_and_empty_selection_fails(cnn_onnx: Path, tmp_path: Path) -> None:
    """A misspelt node name is reported; a selection with no weights is a clear error."""
    outcome = prune(cnn_onnx, tmp_path / "a.onnx", sparsity=0.5, nodes_to_exclude=["/no/such/Conv"])
    assert any("/no/such/Conv" in w for w in outcome.warnings)
    with pytest.raises(TechniqueError) as caught:
        prune(cnn_onnx, tmp_path / "b.onnx", sparsity=0.5, op_types=["MatMul"])
    assert caught.value.slug == "nothing-to-prune"
