"""A TensorRT engine timed on its GPU, interleaved with the job's original ONNX model (torch on CUDA).

Written against the TensorRT 10 Python API, which TensorRT 11 keeps for running engines:
Runtime.deserialize_cuda_engine, the named I/O tensors (num_io_tensors, get_tensor_name,
get_tensor_mode, get_tensor_dtype) and IExecutionContext's set_input_shape, set_tensor_address and
execute_async_v3 on torch's current CUDA stream, so the CUDA events that time it see its kernels.
NOT RUN: the machines this was written on have no GPU and no TensorRT (bench/GPU.md); on them the
function stops at require_cuda() with `no-capable-worker`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from engine.contract import TechniqueError
from engine.evaluate.benchmark import percentiles, throughput
from engine.evaluate.cuda import interleaved, require_cuda
from engine.techniques.build.tensorrt import import_tensorrt
from service.failures import TensorRTBuildFailed

BACKEND = "TensorRT engine (execute_async_v3) against the original ONNX model on torch-cuda (fp32)"


def engine_latency(
    engine_path: Path, baseline_path: Path, batch_sizes: list[int], *, warmup_runs: int, budget_s: float
) -> dict[str, Any]:
    """Per batch: the original (torch, fp32) and the engine interleaved; percentiles and speedup.

    A batch size outside the engine's optimization profile is reported as skipped, not timed.
    """
    torch = require_cuda()
    trt = import_tensorrt()
    from engine.bridge import example_inputs, from_onnx

    engine = load_engine(trt, engine_path)
    context = engine.create_execution_context()
    baseline = from_onnx(baseline_path).eval().to(device="cuda")
    result: dict[str, Any] = {
        "backend": BACKEND,
        "tensorrt_version": trt.__version__,
        "gpu_name": torch.cuda.get_device_name(0),
        "engine_device_memory_bytes": device_memory_bytes(engine),
        "batches": {},
    }
    # A stream of its own: on the legacy default stream enqueueV3 adds synchronizations that the
    # events would count as the engine's time.
    with torch.inference_mode(), torch.cuda.stream(torch.cuda.Stream()):
        for batch in dict.fromkeys(batch_sizes):
            inputs = [t.to(device="cuda") for t in example_inputs(baseline, batch=batch)]
            named = {spec.name: tensor for spec, tensor in zip(baseline.inputs, inputs, strict=True)}
            try:
                runs = [partial(baseline, *inputs), bind(torch, trt, engine, context, named)]
            except OutsideProfile as outside:
                result["batches"][str(batch)] = {"skipped": str(outside)}
                continue
            latencies, _ = interleaved(torch, runs, warmup_runs, budget_s)
            baseline_ms, engine_ms = latencies
            result["batches"][str(batch)] = {
                side: {"latency_ms": percentiles(ms), "throughput_per_s": throughput(ms, batch)}
                for side, ms in (("baseline", baseline_ms), ("engine", engine_ms))
            }
            result["batches"][str(batch)]["speedup"] = float(np.median(baseline_ms) / np.median(engine_ms))
    return result


class OutsideProfile(ValueError):
    """An input shape the engine's optimization profile does not cover."""


def load_engine(trt: Any, engine_path: Path) -> Any:
    """The deserialized engine; one built for another GPU class or TensorRT version is refused by name."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise TechniqueError(
            TensorRTBuildFailed,
            f"TensorRT {trt.__version__} could not load the engine on this GPU: an engine runs only on the "
            "GPU class and TensorRT version it was built with",
        )
    return engine


def bind(torch: Any, trt: Any, engine: Any, context: Any, inputs: dict[str, Any]) -> Any:
    """Set every input's shape and address, allocate the outputs; returns one run on the current stream."""
    names = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
    outputs = {}
    for name in names:
        if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
            continue
        if name not in inputs:
            raise TechniqueError(TensorRTBuildFailed, f"the engine has an input '{name}' the model does not")
        tensor = inputs[name].to(torch_dtype(torch, trt, engine.get_tensor_dtype(name))).contiguous()
        inputs[name] = tensor  # the converted tensor must outlive the runs that read its address
        if not context.set_input_shape(name, tuple(tensor.shape)):
            raise OutsideProfile(
                f"input '{name}' of shape {list(tensor.shape)} is outside the engine's optimization profile"
                " (build it with this batch size in batch_sizes)"
            )
        context.set_tensor_address(name, tensor.data_ptr())
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            continue
        shape = tuple(context.get_tensor_shape(name))
        if any(dim < 0 for dim in shape):
            raise TechniqueError(
                TensorRTBuildFailed,
                f"output '{name}' has a data-dependent shape {list(shape)}; such engines are not timed",
            )
        dtype = torch_dtype(torch, trt, engine.get_tensor_dtype(name))
        outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
        context.set_tensor_address(name, outputs[name].data_ptr())

    # The engine reads and writes the addresses bound above: the run holds their tensors alive.
    return partial(_execute, torch, context, (inputs, outputs))


def _execute(torch: Any, context: Any, _buffers: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """One run of the bound engine on torch's current stream (`_buffers` only keeps its tensors alive)."""
    if not context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
        raise TechniqueError(TensorRTBuildFailed, "TensorRT failed to run the engine (execute_async_v3)")


# TensorRT DataType member names and the torch dtype holding the same values (bfloat16 has no numpy twin).
TORCH_DTYPES = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool",
}  # fmt: skip


def torch_dtype(torch: Any, trt: Any, dtype: Any) -> Any:
    """The torch dtype of a TensorRT tensor type; FP8, INT4 and other packed types are refused by name."""
    name = next((key for key in TORCH_DTYPES if getattr(trt.DataType, key, None) == dtype), None)
    if name is None:
        raise TechniqueError(
            TensorRTBuildFailed, f"an engine tensor of type {dtype} cannot be bound from torch"
        )
    return getattr(torch, TORCH_DTYPES[name])


def device_memory_bytes(engine: Any) -> int | None:
    """Scratch memory the engine's context takes on the GPU (device_memory_size_v2 from TensorRT 10.1)."""
    for attribute in ("device_memory_size_v2", "device_memory_size"):
        value = getattr(engine, attribute, None)
        if value is not None:
            return int(value)
    return None
