"""tensorrt.build up to the import boundary: the profiles a GPU build gets, and the problem without TensorRT.

The same model and parameters as tests/gpu/test_gpu_pool.py's engine builds; here no GPU is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from engine.contract import StepContext, TechniqueError
from engine.techniques.build import tensorrt as build
from engine.techniques.build.profiles import Profile, input_dims, profiles_for
from service.catalog.tensorrt import TensorRTBuildParams

GPU_TEST_PARAMS = {"precision": "fp16", "batch_sizes": [1, 8], "workspace_mib": 512}


def test_the_profile_spans_the_job_batch_sizes_with_opt_at_the_largest(cnn_onnx: Path) -> None:
    assert input_dims(cnn_onnx) == [("x", [None, 1, 8, 8])]
    params = TensorRTBuildParams.model_validate(GPU_TEST_PARAMS)
    assert profiles_for(input_dims(cnn_onnx), params.batch_sizes) == [
        Profile("x", min=(1, 1, 8, 8), opt=(8, 1, 8, 8), max=(8, 1, 8, 8))
    ]


def test_a_dynamic_axis_other_than_batch_is_refused_naming_it(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "sequence"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence"])
    graph = helper.make_graph([helper.make_node("Relu", ["tokens"], ["y"])], "g", [x], [y])
    path = tmp_path / "dynamic.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(TechniqueError) as raised:
        profiles_for(input_dims(path), [1, 4])
    assert raised.value.slug == "unbounded-dimension"
    assert raised.value.extensions == {"input": "tokens", "axis": 1}


def test_without_tensorrt_the_build_stops_with_a_clear_problem(
    cnn_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules is Python's documented way to make an import fail (this machine has no
    # TensorRT anyway; the entry keeps the test meaningful on one that has).
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    params = TensorRTBuildParams.model_validate(GPU_TEST_PARAMS)
    with pytest.raises(TechniqueError) as raised:
        build.run(cnn_onnx, tmp_path / "engine.plan", params, StepContext(workdir=tmp_path))
    assert raised.value.slug == "tensorrt-unavailable"
    assert "cannot import tensorrt" in raised.value.detail
    assert not (tmp_path / "engine.plan").exists()


def test_precision_flags_follow_the_tensorrt_version() -> None:
    assert build.precision_flags("fp16", 10) == ["FP16"]
    assert build.precision_flags("int8", 10) == ["INT8"]
    assert build.precision_flags("best", 10) == ["FP16", "INT8"]
    assert build.precision_flags("fp16", 11) == []  # strongly typed: the graph's types decide
    with pytest.raises(TechniqueError) as raised:
        build.precision_flags("best", 11)
    assert raised.value.slug == "tensorrt-build-failed"


def test_the_timing_cache_is_named_by_gpu_model_and_tensorrt_version() -> None:
    assert build.timing_cache_name("NVIDIA H100 80GB HBM3", "10.13.0.35") == (
        "timing-nvidia-h100-80gb-hbm3-10-13-0-35.cache"
    )
    assert build.timing_cache_name("NVIDIA H100 80GB HBM3", "10.13.0.35") != build.timing_cache_name(
        "NVIDIA H200", "10.13.0.35"
    )


def test_a_failed_build_names_memory_and_time_outs() -> None:
    assert build.build_failure(["Requested amount of GPU memory: out of memory"], 60).slug == "resource-limit"
    assert build.build_failure(["Build was cancelled by the progress monitor"], 60).slug == "timeout"
    assert build.build_failure([], 60).slug == "tensorrt-build-failed"


def test_a_cuda_evaluation_on_a_worker_without_a_gpu_says_so(cnn_onnx: Path) -> None:
    import torch

    from engine.evaluate.cuda import cuda_latency

    if torch.cuda.is_available():  # a GPU machine: the same call measures (tests/gpu checks the figures)
        assert cuda_latency([cnn_onnx, cnn_onnx], [1], warmup_runs=1, budget_s=0.1)["batches"]["1"]
        return
    with pytest.raises(TechniqueError) as raised:
        cuda_latency([cnn_onnx, cnn_onnx], [1, 8], warmup_runs=1, budget_s=0.1)
    assert raised.value.slug == "no-capable-worker"
    assert "has no GPU" in raised.value.detail


def test_an_engine_that_cannot_run_here_says_why(cnn_onnx: Path, tmp_path: Path) -> None:
    """No GPU: no-capable-worker; a GPU without TensorRT: tensorrt-unavailable; with it: not an engine."""
    import importlib.util

    import torch

    from engine.evaluate.tensorrt_engine import engine_latency

    (tmp_path / "engine.plan").write_bytes(b"not an engine")
    if not torch.cuda.is_available():
        expected = "no-capable-worker"
    elif importlib.util.find_spec("tensorrt") is None:
        expected = "tensorrt-unavailable"
    else:
        expected = "tensorrt-build-failed"
    with pytest.raises(TechniqueError) as raised:
        engine_latency(tmp_path / "engine.plan", cnn_onnx, [1, 8], warmup_runs=1, budget_s=0.1)
    assert raised.value.slug == expected
