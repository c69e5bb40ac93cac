"""`tensorrt.build`: ONNX to a serialized TensorRT engine on the GPU pool."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from service.catalog.base import Queue, TechniqueParams, TechniqueSpec

BatchSize = Annotated[int, Field(ge=1, le=1024)]


class TensorRTBuildParams(TechniqueParams):
    """Builder settings; the optimization profile's batch range comes from `batch_sizes`."""

    precision: Literal["fp32", "fp16", "int8", "best"] = Field(
        "fp16",
        description="int8 needs a Q/DQ model (quantize.static or quantize.qat earlier in the job); "
        "`best` lets TensorRT 10 pick per layer among fp32/fp16/int8",
    )
    batch_sizes: list[BatchSize] = Field(
        default_factory=lambda: [1, 8],
        min_length=1,
        max_length=6,
        description="min/max of the profile's batch range; the largest is also the profile's opt",
    )
    workspace_mib: int = Field(1024, ge=16, le=65536, description="builder workspace memory pool limit")
    optimization_level: int = Field(3, ge=0, le=5, description="builder optimization level (3 is TensorRT's)")
    sparse_weights: bool = Field(False, description="use 2:4 sparse kernels for a model made by prune.nm")
    build_timeout_s: int = Field(1800, ge=10, le=86400, description="give up on a build slower than this")


TENSORRT_TECHNIQUES = (
    TechniqueSpec(
        name="tensorrt.build",
        summary="ONNX to a serialized TensorRT engine (fp32/fp16/int8 from Q/DQ/best) for one GPU class "
        "and TensorRT version",
        queue=Queue.GPU,
        params=TensorRTBuildParams,
        implementation="engine.techniques.build.tensorrt",
    ),
)
