"""Accuracy-aware int8 quantization: parameters and where the implementation lives."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.catalog.base import Queue, TechniqueParams, TechniqueSpec


class AutoQuantParams(TechniqueParams):
    """Quantize, measure, and keep the most sensitive nodes in float until the accuracy budget holds."""

    dataset_id: str = Field(
        max_length=64,
        description="Calibration .npz whose arrays are named after the model inputs (first axis = samples)",
    )
    eval_dataset_id: str | None = Field(
        None,
        max_length=64,
        description="Evaluation .npz (default: the calibration dataset). With a `labels` array accuracy is"
        " measured against the labels; without, against the float model's own outputs",
    )
    max_accuracy_drop: float = Field(
        0.01, ge=0.0, le=1e6, description="Largest accepted loss of the metric (see drop_type)"
    )
    drop_type: Literal["absolute", "relative"] = Field(
        "absolute", description="absolute: in metric units (0.01 = 1 point of top-1); relative: a fraction"
    )
    metric: Literal["top1", "top5", "mse", "mae", "cosine"] | None = Field(
        None,
        description="Default: top1 for integer labels, mse for float ones; without labels top1 for"
        " (samples, classes) outputs, else cosine (the drop is 1 - mean cosine to the float model's outputs)."
        " Without labels, top-k counts agreement with the float model's classes and mse/mae/cosine compare"
        " with its outputs",
    )
    mode: Literal["static", "dynamic"] = Field(
        "static", description="static: calibrated QDQ int8 (quantize.static); dynamic: quantize.dynamic"
    )
    per_channel: bool | Literal["auto"] = Field(
        "auto",
        description='One weight scale per output channel instead of per tensor. "auto": per channel for Conv'
        " and per tensor for MatMul/Gemm (quantize.static's default); in dynamic mode per channel for LSTM"
        " models only (quantize.dynamic's default)",
    )
    try_dynamic: bool = Field(
        True,
        description="In static mode, also try dynamic int8 on models with MatMul, Gemm or LSTM nodes (it is"
        " often the faster one on transformers and recurrent nets)",
    )
    calibration_method: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "MinMax", description="How activation ranges are chosen (static mode)"
    )
    max_calibration_samples: int = Field(
        512, ge=1, le=100_000, description="Calibrate on at most this many samples (static mode)"
    )
    max_eval_samples: int = Field(
        1000, ge=1, le=10_000, description="Evaluate every trial on at most this many samples"
    )
    max_trials: int = Field(
        12, ge=1, le=200, description="Most quantized candidates built and measured (the first included)"
    )
    time_budget_s: float = Field(
        600.0, gt=0.0, le=86_400.0, description="No new trial starts when it would end past this many seconds"
    )
    timing_budget_s: float = Field(
        1.0, gt=0.0, le=60.0, description="Seconds of interleaved timed runs per trial (latency at batch 8)"
    )
    preprocess: bool = Field(True, description="Shape inference and graph optimization before quantizing")

    def labelled_datasets(self) -> list[tuple[str, str | None]]:
        """The evaluation dataset (the calibration one by default) is scored with `metric`."""
        return [(self.eval_dataset_id or self.dataset_id, self.metric)]


AUTO_TECHNIQUES = (
    TechniqueSpec(
        name="quantize.auto",
        summary="accuracy-aware: quantize, measure, exclude the most sensitive nodes until the accuracy"
        " budget holds",
        queue=Queue.CPU,
        params=AutoQuantParams,
        implementation="engine.techniques.quantize.auto.technique",
    ),
)
