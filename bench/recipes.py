"""Compression recipes: what a user writes by hand with onnxruntime, and ModelPress's techniques."""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.contract import StepContext
from service.catalog.base import TechniqueParams, TechniqueSpec

CALIBRATION_ID = "calibration"
VALIDATION_ID = "validation"
HAND_CALIBRATION_SAMPLES = 512
# The budget for quantize.auto: at most 1 point of top-1 lost.
AUTO_BUDGET = 0.01
AUTO_SECONDS = 60.0


@dataclass(frozen=True)
class Job:
    """The files a recipe reads and writes."""

    model: Path
    output: Path
    calibration: Path
    validation: Path
    workdir: Path


@dataclass(frozen=True)
class Recipe:
    """One way to compress a model; `apply` writes the candidate and returns its warnings."""

    name: str
    who: str
    apply: Callable[[Job], list[str]]
    # Models the recipe runs on (None: every model); variants only run where they make a point.
    only: tuple[str, ...] | None = None
    # A variant of a default recipe, shown to explain a default; never counted as ModelPress's best.
    ablation: bool = False

    def applies_to(self, model: str) -> bool:
        """Whether the harness runs this recipe on the model."""
        return self.only is None or model in self.only


def _hand_dynamic(job: Job) -> list[str]:
    """onnxruntime.quantization.quantize_dynamic with every default."""
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(job.model, job.output)
    return []


def _hand_static(job: Job) -> list[str]:
    """onnxruntime.quantization.quantize_static with every default and a plain in-memory reader."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    with np.load(job.calibration, allow_pickle=False) as stored:
        images = stored["x"][:HAND_CALIBRATION_SAMPLES]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": images[i : i + 32]} for i in range(0, len(images), 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(job.model, job.output, Reader())
    return []


def _technique(module: str, params_class: type[TechniqueParams], **params: Any) -> Callable[[Job], list[str]]:
    """A ModelPress technique called directly, the way a worker step calls it."""

    def apply(job: Job) -> list[str]:
        technique = importlib.import_module(module)
        datasets = {CALIBRATION_ID: job.calibration, VALIDATION_ID: job.validation}
        context = StepContext(workdir=job.workdir, datasets=datasets)
        outcome = technique.run(job.model, job.output, params_class(**params), context)
        return list(outcome.warnings)

    return apply


def recipes() -> list[Recipe]:
    """Every recipe the harness measures, hand-written ones first."""
    from service.catalog import CATALOG
    from service.catalog.quantize import DynamicQuantParams
    from service.catalog.quantize_fp16 import Fp16Params
    from service.catalog.quantize_static import StaticQuantParams

    dynamic, static = "engine.techniques.quantize.dynamic", "engine.techniques.quantize.static"
    outliers = ("attention-outliers",)
    calibrated = {"dataset_id": CALIBRATION_ID}
    found = [
        Recipe("ort quantize_dynamic, defaults", "hand", _hand_dynamic),
        Recipe("ort quantize_static, defaults", "hand", _hand_static),
        Recipe("quantize.dynamic", "ModelPress", _technique(dynamic, DynamicQuantParams)),
        Recipe(
            "quantize.dynamic, smooth_outliers=false",
            "ModelPress",
            _technique(dynamic, DynamicQuantParams, smooth_outliers=False),
            outliers,
            ablation=True,
        ),
        Recipe(
            "quantize.dynamic, per_channel=true, smooth_outliers=false",
            "ModelPress",
            _technique(dynamic, DynamicQuantParams, per_channel=True, smooth_outliers=False),
            outliers,
            ablation=True,
        ),
        Recipe("quantize.static", "ModelPress", _technique(static, StaticQuantParams, **calibrated)),
        Recipe(
            "quantize.static, per_channel=true",
            "ModelPress",
            _technique(static, StaticQuantParams, per_channel=True, **calibrated),
            ("conv", "mlp"),
            ablation=True,
        ),
        Recipe(
            "quantize.static, smooth_outliers=false",
            "ModelPress",
            _technique(static, StaticQuantParams, smooth_outliers=False, **calibrated),
            outliers,
            ablation=True,
        ),
        Recipe(
            "quantize.static, activation_type=qint8",
            "ModelPress",
            _technique(static, StaticQuantParams, activation_type="qint8", **calibrated),
            ("attention",),
            ablation=True,
        ),
        Recipe(
            "quantize.fp16",
            "ModelPress",
            _technique("engine.techniques.quantize.fp16", Fp16Params),
            ("conv", "mlp", "attention"),
        ),
    ]
    if "quantize.auto" in CATALOG:
        found.append(_auto(CATALOG["quantize.auto"]))
    return found


def _auto(spec: TechniqueSpec) -> Recipe:
    """quantize.auto with the issue's 1-point budget, scoring trials on training images not calibrated on."""
    return Recipe(
        f"quantize.auto, {100 * AUTO_BUDGET:g}-point budget",
        "ModelPress",
        _technique(
            spec.implementation,
            spec.params,
            dataset_id=CALIBRATION_ID,
            eval_dataset_id=VALIDATION_ID,
            max_accuracy_drop=AUTO_BUDGET,
            time_budget_s=AUTO_SECONDS,
        ),
    )
