"""Quantization-aware training: parameters and where the implementation lives."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.catalog.base import Queue, TechniqueParams, TechniqueSpec
from service.catalog.training import TrainingParams


class QatParams(TechniqueParams):
    """Static int8 (calibrated as quantize.static does), then fine-tuned through fake-quant."""

    calibration_method: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "MinMax", description="How the starting activation ranges are chosen (as quantize.static)"
    )
    percentile: float = Field(
        99.999, gt=90.0, le=100.0, description="Percentile of |activation| kept (Percentile method only)"
    )
    per_channel: bool | Literal["auto"] = Field(
        "auto",
        description='One weight scale per output channel (as quantize.static: "auto" = per channel for Conv,'
        " per tensor for MatMul/Gemm)",
    )
    max_calibration_samples: int = Field(
        512, ge=1, le=100_000, description="Calibrate on at most this many samples of the training dataset"
    )
    learn_scales: bool = Field(
        False,
        description="Train the quantization scales with the weights (LSQ, as NNCF does); false keeps the "
        "calibrated scales frozen (as Model Optimizer does)",
    )
    training: TrainingParams = Field(
        description="The fine-tuning run; its dataset also calibrates. With labels: cross-entropy mixed with "
        "distillation from the float original; without: distillation alone"
    )

    def labelled_datasets(self) -> list[tuple[str, str | None]]:
        """The training dataset, whose labels are classes."""
        return [(self.training.dataset_id, "top1")]


QAT_TECHNIQUES = (
    TechniqueSpec(
        name="quantize.qat",
        summary="quantization-aware training: static int8 QDQ fine-tuned through fake-quant (frozen or "
        "learned scales), distilled from the float original",
        queue=Queue.CPU,
        params=QatParams,
        implementation="engine.techniques.quantize.qat",
        trains=True,
    ),
)
