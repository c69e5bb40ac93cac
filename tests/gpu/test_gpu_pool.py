"""GPU tests: the real GPU's registration, torch-CUDA benchmarks, and TensorRT engines where installed.

Marked `gpu` (the engine test also `tensorrt`) and deselected by default (pyproject's
`-m 'not gpu and not tensorrt'`): `make test-gpu` runs `pytest -m "gpu and not tensorrt" tests/gpu` on a
machine with an NVIDIA GPU and torch's CUDA build; `make test-tensorrt` runs `pytest -m tensorrt
tests/gpu` where TensorRT is installed too. NONE OF THESE HAS
RUN YET: the machines this project was built on have no GPU and no TensorRT (bench/GPU.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.contract import StepContext
from service.catalog.tensorrt import TensorRTBuildParams
from tests.worker.test_tensorrt_build import GPU_TEST_PARAMS
from worker import hardware

pytestmark = pytest.mark.gpu
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_the_worker_registers_the_real_gpu() -> None:
    import torch

    found = hardware.probe()
    props = torch.cuda.get_device_properties(0)
    assert found["gpu_name"] == props.name
    assert found["compute_capability"] == f"{props.major}.{props.minor}"
    assert found["gpu_memory_bytes"] == props.total_memory and found["cuda_version"] == torch.version.cuda
    assert (found["tensorrt_version"] is not None) == HAS_TENSORRT


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_a_torch_cuda_benchmark_of_a_real_model_has_percentiles(cnn_onnx: Path, half: bool) -> None:
    from engine.evaluate.cuda import cuda_latency

    result = cuda_latency([cnn_onnx, cnn_onnx], [1, 8], warmup_runs=5, budget_s=1.0, half=half)
    assert result["precision"] == ("fp16" if half else "fp32")
    for batch in ("1", "8"):
        for side in result["batches"][batch]:
            assert 0 < side["latency_ms"]["p50"] <= side["latency_ms"]["p99"]
            assert side["peak_memory_bytes"] > 0 and side["throughput_per_s"] > 0


@pytest.mark.tensorrt
def test_tensorrt_builds_an_fp16_engine_with_its_metadata(cnn_onnx: Path, tmp_path: Path) -> None:
    from engine.techniques.build import tensorrt as build

    precision = "fp16"
    params = TensorRTBuildParams.model_validate({**GPU_TEST_PARAMS, "precision": precision})
    outcome = build.run(cnn_onnx, tmp_path / "engine.plan", params, StepContext(workdir=tmp_path))
    engine = outcome.metrics["engine"]
    assert (tmp_path / "engine.plan").stat().st_size > 0
    assert engine["precision"] == precision and engine["profiles"][0]["max"][0] == 8
    assert (tmp_path / engine["timing_cache"]).stat().st_size > 0


@pytest.mark.tensorrt
def test_an_fp16_engine_is_timed_against_the_original_on_the_same_gpu(cnn_onnx: Path, tmp_path: Path) -> None:
    from engine.evaluate.tensorrt_engine import engine_latency
    from engine.techniques.build import tensorrt as build

    params = TensorRTBuildParams.model_validate({**GPU_TEST_PARAMS, "precision": "fp16"})
    build.run(cnn_onnx, tmp_path / "engine.plan", params, StepContext(workdir=tmp_path))
    result = engine_latency(tmp_path / "engine.plan", cnn_onnx, [1, 8], warmup_runs=5, budget_s=1.0)
    assert result["tensorrt_version"] and result["engine_device_memory_bytes"] is not None
    for batch in ("1", "8"):
        figures = result["batches"][batch]
        for side in ("baseline", "engine"):
            assert 0 < figures[side]["latency_ms"]["p50"] <= figures[side]["latency_ms"]["p99"]
        assert figures["speedup"] > 0


def test_fine_tuning_runs_on_the_gpu_and_hands_the_model_back_on_the_cpu(
    cnn_onnx: Path, digits_npz: Path
) -> None:
    from engine.bridge import from_onnx
    from engine.techniques.train.finetune import finetune
    from service.catalog.training import TrainingParams

    student, teacher = from_onnx(cnn_onnx), from_onnx(cnn_onnx)
    report = finetune(
        student, teacher, digits_npz, TrainingParams(dataset_id="digits", epochs=2), lambda *_: None
    )

    assert report["device"] == "cuda" and len(report["epochs"]) == 2
    assert {p.device.type for p in [*student.parameters(), *teacher.parameters()]} == {"cpu"}
    assert report["epochs"][-1]["validation"]["top1"] >= report["before"]["top1"] - 0.05
