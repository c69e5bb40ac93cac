"""Quantization techniques: parameters and where their implementations live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.catalog.base import NodeNames, OpTypeNames, Queue, TechniqueParams, TechniqueSpec


class DynamicQuantParams(TechniqueParams):
    """int8 weights; activations quantized at run time."""

    # An LSTM reuses its weights at every time step, so per-tensor int8 error compounds: a speaker
    # encoder's embedding fell to cosine 0.93 per tensor and kept 0.998 per channel, both 2x faster
    # (bench/COVERAGE.md, resemblyzer).
    per_channel: bool | Literal["auto"] = Field(
        "auto",
        description='One scale per output channel instead of per tensor. "auto": per channel when the'
        " model has LSTM nodes (their error compounds over time steps), per tensor otherwise",
    )
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="Weight integer type")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI")
    op_types: OpTypeNames | None = Field(
        None, description="Only quantize these op types (default: every type onnxruntime supports)"
    )
    nodes_to_exclude: NodeNames = Field(default_factory=list, description="Node names kept in float")
    preprocess: bool = Field(True, description="Shape inference and graph optimization before quantizing")
    smooth_outliers: bool = Field(
        True,
        description="Before quantizing, move LayerNorm outlier channels (a few channels far wider than"
        " the rest) into the weights they feed, so per-tensor int8 activations keep their precision;"
        " the float function is unchanged",
    )


QUANTIZE_TECHNIQUES = (
    TechniqueSpec(
        name="quantize.dynamic",
        summary="int8 weights, activations quantized at run time (per-tensor or per-channel)",
        queue=Queue.CPU,
        params=DynamicQuantParams,
        implementation="engine.techniques.quantize.dynamic",
    ),
)
