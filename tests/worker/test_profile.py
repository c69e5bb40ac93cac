"""Per-operator profile: onnxruntime's node events, aggregated per op type and per node, and compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from engine.contract import StepContext
from engine.evaluate.profile import QDQ_OPS, aggregate, compare_profiles, node_events, profile_model
from engine.evaluate.profiler_overhead import CALIBRATION_ELEMENTS, bookkeeping_ms, calibration_shape
from engine.techniques.quantize import static as quantize_static
from service.catalog.quantize_static import StaticQuantParams
from tests import model_zoo


@pytest.fixture(scope="module")
def cnn_static(cnn_onnx: Path, digits_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN as static int8 (QDQ), calibrated on digits."""
    folder = tmp_path_factory.mktemp("profile")
    output = folder / "int8.onnx"
    context = StepContext(workdir=folder, datasets={"calibration": digits_npz})
    quantize_static.run(cnn_onnx, output, StaticQuantParams(dataset_id="calibration"), context)
    return output


def _feeds(batch: int = 8) -> dict[str, np.ndarray]:
    images, _ = model_zoo.digits()
    return {"x": images[:batch]}


def test_profile_names_every_op_type_of_the_graph_with_shares_summing_to_one(cnn_onnx: Path) -> None:
    profile = profile_model(cnn_onnx, _feeds(), threads=1, budget_s=0.2)
    assert profile["runs"] >= 1 and profile["total_ms"] > 0
    shares = [entry["share"] for entry in profile["op_types"]]
    assert sum(shares) == pytest.approx(1.0)
    assert shares == sorted(shares, reverse=True)
    profiled = {entry["op_type"] for entry in profile["op_types"]}
    # onnxruntime fuses Relu into Conv and may rewrite layouts, but every Conv and Gemm still runs.
    assert "Conv" in profiled or "FusedConv" in profiled
    assert {"Gemm"} <= profiled | {"FusedGemm"}
    counted = sum(entry["count"] for entry in profile["op_types"])
    assert counted >= len(profile["top_nodes"]) > 0
    assert {node["provider"] for node in profile["top_nodes"]} == {"CPUExecutionProvider"}


def test_static_int8_profile_shows_time_in_quantize_dequantize_nodes(
    cnn_onnx: Path, cnn_static: Path
) -> None:
    # A batch whose Quantize/DequantizeLinear nodes take longer than the profiler's own bookkeeping.
    feeds = _feeds(256)
    baseline = profile_model(cnn_onnx, feeds, threads=1, budget_s=0.2)
    candidate = profile_model(cnn_static, feeds, threads=1, budget_s=0.2)
    profile = compare_profiles(baseline, candidate, quantized=True)
    assert profile["quantize_dequantize"]["ms"] > 0
    assert 0 < profile["quantize_dequantize"]["share"] < 1
    assert QDQ_OPS & {entry["op_type"] for entry in candidate["op_types"]}
    # Each delta row is the candidate's time minus the baseline's for that op type.
    for row in profile["delta"]:
        assert row["delta_ms"] == pytest.approx(row["candidate_ms"] - row["baseline_ms"])
    assert {row["op_type"] for row in profile["delta"]} >= {
        entry["op_type"] for entry in baseline["op_types"]
    }


def test_float_nodes_left_in_a_quantized_model_are_fp32_fallbacks(
    cnn_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    """Quantizing only the Conv layers leaves the Gemm head running in fp32."""
    output = tmp_path / "conv-only.onnx"
    context = StepContext(workdir=tmp_path, datasets={"calibration": digits_npz})
    params = StaticQuantParams(dataset_id="calibration", op_types=["Conv"])
    quantize_static.run(cnn_onnx, output, params, context)
    assert "Gemm" in {node.op_type for node in onnx.load(str(output)).graph.node}
    feeds = _feeds()
    baseline = profile_model(cnn_onnx, feeds, threads=1, budget_s=0.2)
    profile = compare_profiles(
        baseline, profile_model(output, feeds, threads=1, budget_s=0.2), quantized=True
    )
    assert "Gemm" in profile["fp32_fallback"]["op_types"]
    assert profile["fp32_fallback"]["ms"] > 0
    float_model = compare_profiles(baseline, baseline, quantized=False)
    assert float_model["fp32_fallback"] == {"ms": 0, "share": 0.0, "op_types": []}


def _run(start: int, conv_us: int, relu_us: int) -> list[dict[str, object]]:
    """One run's events as onnxruntime writes them: the run, a fence and two kernels."""
    return [
        {"cat": "Session", "name": "model_run", "ts": start, "dur": 50},
        {"cat": "Node", "name": "a_fence_before", "ts": start + 1, "dur": 0, "args": {"op_name": "Conv"}},
        {
            "cat": "Node",
            "name": "a_kernel_time",
            "ts": start + 2,
            "dur": conv_us,
            "args": {"op_name": "Conv"},
        },
        {
            "cat": "Node",
            "name": "b_kernel_time",
            "ts": start + 3,
            "dur": relu_us,
            "args": {"op_name": "Relu"},
        },
    ]


def test_warm_up_runs_are_left_out_and_the_median_run_is_reported() -> None:
    trace = [
        *_run(0, 40_000, 9_000),  # warm-up: allocations, left out
        *_run(100, 2_000, 1_000),
        *_run(200, 2_200, 1_000),
        *_run(300, 30_000, 1_000),  # slowed by another process: the median ignores it
    ]
    events = node_events(trace, skip_runs=1)
    assert [(event["run"], event["node"], event["ms"]) for event in events][:2] == [
        (0, "a", 2.0),
        (0, "b", 1.0),
    ]
    assert len(events) == 6
    summary = aggregate(events, runs=3)
    assert summary["total_ms"] == pytest.approx(3.2)
    assert summary["runs"] == 3
    assert [(entry["op_type"], entry["share"]) for entry in summary["op_types"]] == [
        ("Conv", pytest.approx(2.2 / 3.2)),
        ("Relu", pytest.approx(1 / 3.2)),
    ]
    assert [node["node"] for node in summary["top_nodes"]] == ["a", "b"]


def test_the_profilers_own_work_is_taken_off_each_node_by_its_tensor_count() -> None:
    """1 µs a node and 0.5 µs a tensor: Conv (3 tensors) loses 2.5 µs, Relu (2) 2 µs, never below 0."""
    trace = _run(0, 10, 1)
    trace[2]["args"] = {"op_name": "Conv", "input_type_shape": [{}, {}], "output_type_shape": [{}]}
    trace[3]["args"] = {"op_name": "Relu", "input_type_shape": '[{"float": [8]}]', "output_type_shape": [{}]}
    events = node_events(trace, bookkeeping=(0.001, 0.0005))
    assert [(event["node"], event["ms"]) for event in events] == [
        ("a", pytest.approx(0.0075)),
        ("b", 0.0),
    ]


def test_the_profilers_bookkeeping_is_measured_small_and_positive(cnn_onnx: Path) -> None:
    """A few microseconds a node on any machine; the profile says what it took off."""
    shape = calibration_shape(_feeds()["x"].shape)
    per_node, per_tensor = bookkeeping_ms(1, shape)
    assert 0 <= per_node < 0.05 and 0 <= per_tensor < 0.02 and per_node + 3 * per_tensor > 0
    profile = profile_model(cnn_onnx, _feeds(), threads=1, budget_s=0.2)
    assert profile["profiler_bookkeeping_us"] == {
        "per_node": pytest.approx(per_node * 1e3),
        "per_tensor": pytest.approx(per_tensor * 1e3),
    }
    assert profile["profiler_calibration_shape"] == list(shape)


def test_the_calibration_keeps_the_inputs_rank_and_batch_and_stays_small() -> None:
    assert calibration_shape((8, 1, 16, 16)) == (8, 1, 16, 16)
    image = calibration_shape((8, 3, 640, 640))
    assert len(image) == 4 and image[:2] == (8, 3) and np.prod(image) <= CALIBRATION_ELEMENTS
    assert calibration_shape((64, 3, 32, 32)) == (64, 3, 4, 4)
    assert calibration_shape((1, 100_000)) == (1, 3125)
    assert calibration_shape((100_000, 1)) == (3125, 1)
    assert calibration_shape(()) == () and calibration_shape((0, 5)) == (1, 5)
    per_node, per_tensor = bookkeeping_ms(1, ())  # a scalar input: the chain runs on scalars
    assert per_node >= 0 and per_tensor >= 0
