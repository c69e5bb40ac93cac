"""Static (calibrated) int8 quantization: parameters and where the implementation lives."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from service.catalog.base import NodeNames, OpTypeNames, Queue, TechniqueParams, TechniqueSpec


class StaticQuantParams(TechniqueParams):
    """int8 QDQ weights and activations, with activation ranges calibrated on a dataset."""

    dataset_id: str = Field(
        max_length=64,
        description="Uploaded .npz whose arrays are named after the model inputs (first axis = samples)",
    )
    calibration_method: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "MinMax", description="How activation ranges are chosen from the calibration data"
    )
    percentile: float = Field(
        99.999, gt=90.0, le=100.0, description="Percentile of |activation| kept (Percentile method only)"
    )
    # Per-channel Conv weights run in QLinearConv's int8 kernels at no cost; MatMul/Gemm weights with
    # per-channel scales miss onnxruntime's fused int8 GEMMs (the digits MLP ran 1.4x slower with them
    # at the same accuracy, bench/RESULTS.md), so "auto" keeps those per tensor.
    per_channel: bool | Literal["auto"] = Field(
        "auto",
        description='One weight scale per output channel instead of per tensor. "auto": per channel for'
        " Conv weights, per tensor for MatMul/Gemm (faster there, and activation ranges, not weight"
        " ranges, limit their accuracy); true/false: every weight / none",
    )
    smooth_outliers: bool = Field(
        True,
        description="Before quantizing, move LayerNorm outlier channels (a few channels far wider than"
        " the rest) into the weights they feed, so per-tensor int8 activations keep their precision;"
        " the float function is unchanged",
    )
    # uint8 activations x int8 weights is the pairing onnxruntime's x86 int8 GEMM kernels (VNNI
    # VPDPBUSD) are built for: on an AVX-512 VNNI EPYC the transformer encoder ran markedly faster than
    # with int8 activations at the same accuracy (bench/RESULTS.md, activation_type=qint8 row).
    activation_type: Literal["qint8", "quint8"] = Field("quint8", description="Activation integer type")
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="Weight integer type")
    reduce_range: bool = Field(
        False, description="7-bit weights, for CPUs without VNNI where uint8 x int8 sums can saturate"
    )
    max_calibration_samples: int = Field(
        512, ge=1, le=100_000, description="Use at most this many samples of the dataset for calibration"
    )
    calibration_batch_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="Samples per calibration batch at most; fewer when one batch's activations would take"
        " more than 1 GiB (or an eighth of the step's memory limit)",
    )
    op_types: OpTypeNames | None = Field(
        None, description="Only quantize these op types (default: every type onnxruntime supports)"
    )
    nodes_to_exclude: NodeNames = Field(default_factory=list, description="Node names kept in float")
    preprocess: bool = Field(True, description="Shape inference and graph optimization before quantizing")

    @model_validator(mode="after")
    def _supported_pairing(self) -> Self:
        """onnxruntime has no kernels for int8 activations with uint8 weights."""
        if self.activation_type == "qint8" and self.weight_type == "quint8":
            raise ValueError("activation_type qint8 with weight_type quint8 is not supported")
        return self


STATIC_TECHNIQUES = (
    TechniqueSpec(
        name="quantize.static",
        summary="int8 QDQ with calibration data (MinMax, Entropy, Percentile; per-channel)",
        queue=Queue.CPU,
        params=StaticQuantParams,
        implementation="engine.techniques.quantize.static",
    ),
)
