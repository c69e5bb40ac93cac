"""tensorrt.build: a serialized TensorRT engine from the ONNX model, for one GPU class and TRT version.

Written against the TensorRT 10 Python API (Builder, OnnxParser.parse_from_file, set_memory_pool_limit,
builder_optimization_level, timing caches, IProgressMonitor, build_serialized_network), with a branch
for TensorRT 11, which removes the FP16/INT8 builder flags and calibrators: there the network is
strongly typed, fp16 must come from a float16 ONNX and int8 only from Q/DQ nodes. NEITHER PATH HAS
BEEN RUN: the machines this was written on have no GPU and no TensorRT (see bench/GPU.md). What runs
on CPU is everything up to `import tensorrt`, which fails with a `tensorrt-unavailable` problem.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.build.profiles import Profile, input_dims, profiles_for
from service.catalog.tensorrt import TensorRTBuildParams
from service.failures import ResourceLimit, StepTimeout, TensorRTBuildFailed, TensorRTUnavailable

ENGINE_WARNING = (
    "a TensorRT engine runs only on the GPU class (compute capability) and TensorRT version it was built "
    "with; rebuild it for any other"
)


def run(model_path: Path, output_path: Path, params: TensorRTBuildParams, ctx: StepContext) -> StepOutcome:
    """Parse, configure, build and serialize; the engine's metadata goes in the step's metrics."""
    profiles = profiles_for(input_dims(model_path), params.batch_sizes)
    trt = import_tensorrt()
    major = int(trt.__version__.split(".")[0])
    logger = _Logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, major))
    parse(trt, network, logger, model_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, params.workspace_mib << 20)
    config.builder_optimization_level = params.optimization_level
    for flag in precision_flags(params.precision, major):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if params.sparse_weights:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    profile = builder.create_optimization_profile()
    for each in profiles:
        profile.set_shape(each.name, each.min, each.opt, each.max)
    config.add_optimization_profile(profile)
    device = gpu_identity()
    cache_path = ctx.workdir / timing_cache_name(device["gpu_name"], trt.__version__)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    config.progress_monitor = _progress_monitor(trt, ctx, params.build_timeout_s)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise build_failure(logger.errors, params.build_timeout_s)
    output_path.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    metadata = {
        **device,
        "tensorrt_version": trt.__version__,
        "precision": params.precision,
        "sparse_weights": params.sparse_weights,
        "profiles": [each.describe() for each in profiles],
        "timing_cache": cache_path.name,
    }
    return StepOutcome(metrics={"engine": metadata}, warnings=[ENGINE_WARNING])


def import_tensorrt() -> Any:
    """The tensorrt module, or a problem saying this worker has none (the API refuses it when it can)."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TechniqueError(
            TensorRTUnavailable,
            f"the worker that took this step cannot import tensorrt ({exc}); install the `gpu` extra or "
            "run the GPU worker image",
        ) from None
    return tensorrt


def network_flags(trt: Any, major: int) -> int:
    """TensorRT 10: explicit batch is the only mode (flag 0). TensorRT 11: always strongly typed."""
    if major >= 11:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def precision_flags(precision: str, major: int) -> list[str]:
    """Builder flags for TensorRT 10; TensorRT 11 takes precision from the graph's own types."""
    if major >= 11:
        if precision == "best":
            raise TechniqueError(
                TensorRTBuildFailed,
                "precision 'best' needs TensorRT 10's weakly typed networks; TensorRT 11 takes types "
                "from the model: use quantize.fp16 (float32 I/O) or a Q/DQ model and precision fp16/int8",
            )
        return []
    return {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"], "best": ["FP16", "INT8"]}[precision]


def parse(trt: Any, network: Any, logger: Any, model_path: Path) -> None:
    """parse_from_file (external data resolves beside the file); an error names the node and its op."""
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(model_path)):
        return
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    described = [
        {"node": e.node_name(), "op": e.node_operator(), "message": e.desc(), "code": str(e.code())}
        for e in errors
    ]
    first = described[0] if described else {"node": "?", "op": "?", "message": "unknown parser error"}
    raise TechniqueError(
        TensorRTBuildFailed,
        f"TensorRT's ONNX parser failed at node '{first['node']}' (op {first['op']}): {first['message']}",
        parser_errors=described[:20],
    )


def build_failure(errors: list[str], timeout_s: int) -> TechniqueError:
    """The problem for a build that returned nothing: out of memory, time-out, or the builder's words."""
    text = "; ".join(errors[-5:]) or "the builder returned no engine"
    lowered = text.lower()
    if "cancel" in lowered or "interrupt" in lowered:
        return TechniqueError(StepTimeout, f"the TensorRT build exceeded build_timeout_s={timeout_s}")
    if "out of memory" in lowered or "outofmemory" in lowered:
        return TechniqueError(ResourceLimit, f"TensorRT ran out of GPU memory while building: {text}")
    return TechniqueError(TensorRTBuildFailed, f"TensorRT could not build the engine: {text}")


def gpu_identity() -> dict[str, Any]:
    """The GPU the engine is for: name and compute capability, through torch.cuda."""
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"gpu_name": props.name, "compute_capability": f"{props.major}.{props.minor}"}


def timing_cache_name(gpu_name: str, trt_version: str) -> str:
    """One timing cache per GPU model and TensorRT version: a cache from another is useless or refused."""
    slug = "".join(c if c.isalnum() else "-" for c in f"{gpu_name}-{trt_version}").strip("-").lower()
    return f"timing-{slug}.cache"


class _Logger:
    """Builds a trt.ILogger subclass at run time (the base class exists only once tensorrt is imported)."""

    def __new__(cls, trt: Any) -> Any:
        class Collecting(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                    self.errors.append(msg)

        return Collecting()


def _progress_monitor(trt: Any, ctx: StepContext, timeout_s: int) -> Any:
    """An IProgressMonitor (TensorRT 10) that reports phases and cancels the build past its time limit."""
    deadline = time.monotonic() + timeout_s

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        # The signatures are TensorRT's (it calls them positionally); unused parameters stay named.
        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:  # noqa: ARG002
            ctx.progress(0.0, f"TensorRT: {phase_name}")

        def step_complete(self, phase_name: str, step: int) -> bool:  # noqa: ARG002
            return time.monotonic() < deadline  # False cancels the build

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


__all__ = ["Profile", "run"]
