"""float16 conversion: parameters and where the implementation lives."""

from __future__ import annotations

from pydantic import Field

from service.catalog.base import NodeNames, OpTypeNames, Queue, TechniqueParams, TechniqueSpec

# Ops whose float16 results drift: exponentials overflow float16's range and long reductions
# accumulate rounding error, so they stay in float32 with casts around them. (Ops with no float16
# kernel at all, such as the ai.onnx.ml ones, are always kept in float32 by the worker.)
DEFAULT_FP16_BLOCK_LIST = (
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "CumSum",
)


class Fp16Params(TechniqueParams):
    """float16 weights and compute; model inputs and outputs stay float32."""

    op_block_list: OpTypeNames = Field(
        default_factory=lambda: list(DEFAULT_FP16_BLOCK_LIST),
        description="Op types kept in float32 (precision-sensitive reductions and exponentials)",
    )
    nodes_to_exclude: NodeNames = Field(default_factory=list, description="Node names kept in float32")


FP16_TECHNIQUES = (
    TechniqueSpec(
        name="quantize.fp16",
        summary="float16 weights and compute, inputs and outputs kept float32",
        queue=Queue.CPU,
        params=Fp16Params,
        implementation="engine.techniques.quantize.fp16",
    ),
)
