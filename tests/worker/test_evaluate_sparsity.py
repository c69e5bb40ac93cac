"""The comparison's storage figures: gzip size and per-layer sparsity show what pruning saves."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import numpy_helper

from engine.contract import StepContext
from engine.evaluate import compare_models, describe_model
from engine.evaluate.sparsity import per_layer_sparsity
from engine.techniques.prune import magnitude as prune_magnitude
from engine.techniques.quantize import static as quantize_static
from service.catalog.prune import MagnitudePruneParams
from service.catalog.quantize_static import StaticQuantParams

MLP_LAYERS = {"/net/net.1/Gemm", "/net/net.3/Gemm", "/net/net.5/Gemm"}


@pytest.fixture(scope="module")
def pruned_mlp(mlp_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits MLP with 70% of each layer's weights zeroed by prune.magnitude."""
    folder = tmp_path_factory.mktemp("sparse")
    output = folder / "pruned.onnx"
    params = MagnitudePruneParams(sparsity=0.7)
    prune_magnitude.run(mlp_onnx, output, params, StepContext(workdir=folder))
    return output


def test_compressed_size_is_the_gzip_size_of_the_file(mlp_onnx: Path) -> None:
    described = describe_model(mlp_onnx)

    expected = len(gzip.compress(mlp_onnx.read_bytes(), compresslevel=6))
    assert described["compressed_size_bytes"] == expected
    assert described["compressed_size_bytes"] < described["size_bytes"] == mlp_onnx.stat().st_size


def test_a_dense_model_reports_no_per_layer_sparsity(mlp_onnx: Path) -> None:
    assert "per_layer_sparsity" not in describe_model(mlp_onnx)


def test_unstructured_sparsity_shows_in_gzip_size_not_file_size(mlp_onnx: Path, pruned_mlp: Path) -> None:
    dense, sparse = describe_model(mlp_onnx), describe_model(pruned_mlp)

    assert abs(sparse["size_bytes"] - dense["size_bytes"]) < 0.01 * dense["size_bytes"]
    assert sparse["compressed_size_bytes"] < 0.6 * dense["compressed_size_bytes"]
    assert set(sparse["per_layer_sparsity"]) == MLP_LAYERS
    for fraction in sparse["per_layer_sparsity"].values():
        assert fraction == pytest.approx(0.7, abs=0.01)


def test_sparsity_is_counted_against_the_zero_point_after_quantization(
    pruned_mlp: Path, digits_npz: Path, tmp_path: Path
) -> None:
    output = tmp_path / "int8.onnx"
    context = StepContext(workdir=tmp_path, datasets={"calibration": digits_npz})
    # uint8 weights have a non-zero zero point: a pruned weight is stored as that, not as 0.
    params = StaticQuantParams(dataset_id="calibration", weight_type="quint8")
    quantize_static.run(pruned_mlp, output, params, context)

    layers = describe_model(output)["per_layer_sparsity"]

    initializers = onnx.load(str(output)).graph.initializer
    zero_points = [numpy_helper.to_array(i) for i in initializers if i.name.endswith("weight_zero_point")]
    assert len(zero_points) == 3 and all(point.any() for point in zero_points)
    float_layers = describe_model(pruned_mlp)["per_layer_sparsity"]
    assert set(layers) == MLP_LAYERS
    for name, fraction in layers.items():
        # The pruned weights, plus any tiny one that rounds to the zero point.
        assert float_layers[name] <= fraction < 0.8


def test_per_layer_sparsity_keeps_the_largest_layers(pruned_mlp: Path) -> None:
    model = onnx.load(str(pruned_mlp))

    layers = per_layer_sparsity(model, limit=2)

    assert layers is not None
    assert set(layers) == {"/net/net.1/Gemm", "/net/net.3/Gemm"}  # 64x64 each; the head is 64x10


def test_external_data_is_counted_in_both_sizes(pruned_mlp: Path, tmp_path: Path) -> None:
    model = onnx.load(str(pruned_mlp))
    path = tmp_path / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    data = tmp_path / "weights.bin"

    described = describe_model(path)

    assert described["size_bytes"] == path.stat().st_size + data.stat().st_size
    expected = sum(len(gzip.compress(file.read_bytes(), compresslevel=6)) for file in (path, data))
    assert described["compressed_size_bytes"] == expected
    assert set(described["per_layer_sparsity"]) == MLP_LAYERS


def test_comparison_reports_the_compressed_size_ratio(
    mlp_onnx: Path, pruned_mlp: Path, mlp_signature: dict[str, Any]
) -> None:
    comparison = compare_models(
        str(mlp_onnx),
        str(pruned_mlp),
        signature=mlp_signature,
        dataset_path=None,
        metric=None,
        batch_sizes=[1],
        threads=1,
        time_budget_s=0.1,
        warmup_runs=1,
        min_runs=3,
        max_accuracy_drop=None,
    )

    baseline, candidate = comparison["baseline"], comparison["candidate"]
    ratio = comparison["delta"]["compressed_size_ratio"]
    assert ratio == candidate["compressed_size_bytes"] / baseline["compressed_size_bytes"] < 0.6
    assert "per_layer_sparsity" not in baseline
    assert set(candidate["per_layer_sparsity"]) == MLP_LAYERS
    assert candidate["nonzero_parameters"] < 0.5 * baseline["nonzero_parameters"]
