"""Weight-only block-wise int4/int8 quantization (MatMulNBits): parameters and implementation."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from service.catalog.base import NodeNames, Queue, TechniqueParams, TechniqueSpec

WeightOnlyAlgorithm = Literal["rtn", "hqq", "gptq"]
WeightOnlyOp = Literal["MatMul", "Gather"]
WEIGHT_ONLY_ALGORITHMS: tuple[WeightOnlyAlgorithm, ...] = ("rtn", "hqq", "gptq")


class WeightOnlyParams(TechniqueParams):
    """Block-wise low-bit weights for MatMul (and Gather) nodes; activations stay float."""

    algorithm: WeightOnlyAlgorithm = Field(
        "rtn",
        description="rtn: round to nearest per block; hqq: half-quadratic optimized scales and zero"
        " points (asymmetric); gptq: error-compensating, calibrated on dataset_id",
    )
    bits: Literal[4, 8] = Field(4, description="Bits per weight (hqq and gptq: 4)")
    block_size: int = Field(128, ge=16, le=2048, description="Weights per block sharing a scale (power of 2)")
    symmetric: bool | None = Field(
        None,
        description="Symmetric blocks (no zero point); default: true for rtn and gptq, false for hqq and"
        " with float_zero_points",
    )
    float_zero_points: bool | None = Field(
        None,
        description="Asymmetric blocks keep their exact minimum (a float zero point, as GGUF's Q4_1 and"
        " HQQ do) instead of rounding the zero point to an integer; run on onnxruntime's int4 kernels with"
        " one small float MatMul per node for the offsets. Default: true for hqq (by construction),"
        " false for rtn and gptq; MatMul only (Gather keeps integer zero points)",
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4,
        description="MatMulNBits compute type: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations"
        " (onnxruntime's fast CPU path)",
    )
    op_types: list[WeightOnlyOp] = Field(
        default_factory=lambda: list[WeightOnlyOp](["MatMul"]),
        min_length=1,
        max_length=2,
        description="Op types quantized: MatMul weights, and Gather for embedding tables (by rtn whatever"
        " the algorithm, with integer zero points)",
    )
    nodes_to_exclude: NodeNames = Field(default_factory=list, description="Node names kept in float")
    dataset_id: str | None = Field(
        None, max_length=64, description="Calibration .npz named after the model inputs (gptq only)"
    )
    calibration_samples: int = Field(
        16, ge=1, le=1024, description="Samples of dataset_id gptq calibrates on"
    )

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        """Combinations onnxruntime's quantizers do not offer are refused, not silently changed."""
        if self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of 2, not {self.block_size}")
        if self.algorithm != "rtn" and self.bits != 4:
            raise ValueError(f"{self.algorithm} quantizes to 4 bits only")
        if self.algorithm == "hqq" and self.symmetric:
            raise ValueError("hqq is asymmetric by construction; leave symmetric unset or false")
        if self.algorithm == "hqq" and self.float_zero_points is False:
            raise ValueError(
                "hqq's zero points are float by construction; leave float_zero_points unset or true"
            )
        if self.float_zero_points and self.symmetric:
            raise ValueError("float_zero_points is for asymmetric blocks; leave symmetric unset or false")
        if self.algorithm == "gptq" and self.dataset_id is None:
            raise ValueError("gptq calibrates on data: set dataset_id")
        if self.algorithm != "gptq" and self.dataset_id is not None:
            raise ValueError(f"{self.algorithm} needs no calibration data; dataset_id is for gptq")
        if "Gather" in self.op_types and self.bits != 4:
            raise ValueError("Gather (embedding) weights quantize to 4 bits only")
        return self

    def is_symmetric(self) -> bool:
        """The symmetry the algorithm runs with."""
        if self.symmetric is not None:
            return self.symmetric
        return not self.has_float_zero_points()

    def has_float_zero_points(self) -> bool:
        """Whether blocks keep a float zero point (hqq always does)."""
        return self.algorithm == "hqq" or bool(self.float_zero_points)


WEIGHT_ONLY_TECHNIQUES = (
    TechniqueSpec(
        name="quantize.weight_only",
        summary="block-wise int4/int8 weights for MatMul/Gather (MatMulNBits: RTN, HQQ, GPTQ), for"
        " transformers and language models",
        queue=Queue.CPU,
        params=WeightOnlyParams,
        implementation="engine.techniques.quantize.weight_only",
    ),
)
