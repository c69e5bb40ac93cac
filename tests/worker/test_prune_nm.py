"""prune.nm: every group of M weights along the reduction dimension keeps at most N, the largest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from service.catalog.prune import NMPruneParams
from tests import model_zoo
from worker.techniques import prune_nm
from worker.techniques.base import StepContext, StepOutcome, TechniqueError


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
