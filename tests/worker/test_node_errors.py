"""The per-node error report: tensors matched across graphs, the right node blamed, its place in compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from engine.contract import StepContext
from engine.evaluate import compare_models
from engine.evaluate.describe import op_histogram
from engine.evaluate.node_errors import TOP_NODES, measure_nodes, node_errors
from engine.evaluate.precision import DYNAMIC_INT8, STATIC_INT8, precision_kind
from engine.ingest.summary import signature
from engine.techniques.quantize import static as quantize_static
from service.catalog.quantize_static import StaticQuantParams
from tests import model_zoo

IMAGES = {"x": model_zoo.digits()[0][:32]}


@pytest.fixture(scope="module")
def cnn_static(cnn_onnx: Path, digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CNN after quantize.static (QDQ int8)."""
    folder = tmp_path_factory.mktemp("static")
    output = folder / "cnn-int8.onnx"
    context = StepContext(workdir=folder, datasets={"calibration": digits_npz})
    quantize_static.run(cnn_onnx, output, StaticQuantParams(dataset_id="calibration"), context)
    return output


def _perturbed(model_path: Path, node_name: str, target: Path) -> Path:
    """The float model with one Gemm's weight shifted by noise of 20% of its spread."""
    model = onnx.load(str(model_path))
    node = next(node for node in model.graph.node if node.name == node_name)
    weight = next(tensor for tensor in model.graph.initializer if tensor.name == node.input[1])
    values = numpy_helper.to_array(weight)
    noise = np.random.default_rng(0).standard_normal(values.shape).astype(np.float32) * values.std() * 0.2
    weight.CopyFrom(numpy_helper.from_array(values + noise, weight.name))
    onnx.save(model, str(target))
    return target


def test_the_perturbed_node_is_blamed_and_nodes_before_it_are_exact(mlp_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(mlp_onnx))
    order = [node.name for node in model.graph.node]
    gemms = [node.name for node in model.graph.node if node.op_type == "Gemm"]
    target = gemms[1]
    candidate = onnx.load(str(_perturbed(mlp_onnx, target, tmp_path / "perturbed.onnx")))
    errors = {
        error.node: error for error in measure_nodes(model, candidate, IMAGES, threads=1, budget_s=5.0) or []
    }
    assert set(errors) == set(order)
    for name in order[: order.index(target)]:
        assert errors[name].relative_error == 0.0 and errors[name].cosine == pytest.approx(1.0)
    assert errors[target].relative_error > 0.01
    assert max(errors.values(), key=lambda error: error.added_error).node == target


def test_report_lists_quantized_nodes_worst_first(cnn_onnx: Path, cnn_static: Path) -> None:
    baseline, candidate = onnx.load(str(cnn_onnx)), onnx.load(str(cnn_static))
    report = node_errors(baseline, candidate, IMAGES, threads=1, budget_s=5.0)
    assert report is not None and 0 < len(report) <= TOP_NODES
    relative = [entry["relative_error"] for entry in report]
    assert relative == sorted(relative, reverse=True) and relative[0] > 0
    op_types = {node.name: node.op_type for node in baseline.graph.node}
    for entry in report:
        assert set(entry) == {"node", "op_type", "cosine", "relative_error", "added_error"}
        assert op_types[entry["node"]] == entry["op_type"]
        assert 0.9 < entry["cosine"] <= 1.0 + 1e-9
    assert {"Conv", "Gemm"} <= {entry["op_type"] for entry in report}


def test_qoperator_and_qdq_candidates_blame_the_same_node(cnn_onnx: Path, tmp_path: Path) -> None:
    """The same quantization in both formats: the report reads each and blames the same node."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": model_zoo.digits("train")[0][:128]}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    baseline = onnx.load(str(cnn_onnx))
    blamed = []
    for quant_format in (QuantFormat.QDQ, QuantFormat.QOperator):
        candidate = tmp_path / f"{quant_format.name}.onnx"
        quantize_static(str(cnn_onnx), str(candidate), Reader(), quant_format=quant_format)
        errors = measure_nodes(baseline, onnx.load(str(candidate)), IMAGES, threads=1, budget_s=5.0) or []
        # Conv + Relu fold into one QLinearConv: the report must still read the post-Relu values
        # (per-tensor int8 keeps ~0.99 of cosine here; the stem's pre-Relu values score ~0.72).
        assert errors and all(error.cosine > 0.95 for error in errors)
        blamed.append(max(errors, key=lambda error: error.added_error).node)
    assert blamed[0] == blamed[1]


def test_precision_kind_reads_the_candidate(
    cnn_onnx: Path, cnn_static: Path, mlp_onnx: Path, mlp_int8: Path
) -> None:
    kinds = [
        precision_kind(model, op_histogram(model))
        for model in map(onnx.load, map(str, (cnn_static, mlp_int8)))
    ]
    assert kinds == [STATIC_INT8, DYNAMIC_INT8]
    assert precision_kind(onnx.load(str(mlp_onnx)), op_histogram(onnx.load(str(mlp_onnx)))) is None


def _compare(baseline: Path, candidate: Path, **options: Any) -> dict[str, Any]:
    return compare_models(
        str(baseline), str(candidate), signature=signature(onnx.load(str(baseline))), dataset_path=None,
        metric=None, batch_sizes=[8], threads=1, time_budget_s=0.1, warmup_runs=2, min_runs=3,
        max_accuracy_drop=None, **options,
    )  # fmt: skip


def test_compare_reports_node_errors_only_for_quantized_candidates(
    cnn_onnx: Path, cnn_static: Path, mlp_onnx: Path
) -> None:
    quantized = _compare(cnn_onnx, cnn_static)
    assert quantized["node_errors"] and quantized["node_errors"][0]["relative_error"] > 0
    assert _compare(mlp_onnx, mlp_onnx)["node_errors"] is None
