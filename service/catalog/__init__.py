"""The technique catalog: names, queues and parameter schemas, with no ML imports."""

from __future__ import annotations

from service.catalog.base import (
    Queue,
    TechniqueParams,
    TechniqueSpec,
    referenced_dataset_ids,
    referenced_model_ids,
)
from service.catalog.distill import DISTILL_TECHNIQUES
from service.catalog.export_torch import EXPORT_TECHNIQUES
from service.catalog.optimize import OPTIMIZE_TECHNIQUES
from service.catalog.prune import PRUNE_TECHNIQUES
from service.catalog.quantize import QUANTIZE_TECHNIQUES
from service.catalog.quantize_auto import AUTO_TECHNIQUES
from service.catalog.quantize_fp16 import FP16_TECHNIQUES
from service.catalog.quantize_qat import QAT_TECHNIQUES
from service.catalog.quantize_static import STATIC_TECHNIQUES
from service.catalog.quantize_weight_only import WEIGHT_ONLY_TECHNIQUES
from service.catalog.tensorrt import TENSORRT_TECHNIQUES

CATALOG: dict[str, TechniqueSpec] = {
    spec.name: spec
    for spec in (
        *QUANTIZE_TECHNIQUES,
        *STATIC_TECHNIQUES,
        *QAT_TECHNIQUES,
        *FP16_TECHNIQUES,
        *AUTO_TECHNIQUES,
        *WEIGHT_ONLY_TECHNIQUES,
        *PRUNE_TECHNIQUES,
        *EXPORT_TECHNIQUES,
        *TENSORRT_TECHNIQUES,
        *DISTILL_TECHNIQUES,
        *OPTIMIZE_TECHNIQUES,
    )
}

__all__ = [
    "CATALOG",
    "Queue",
    "TechniqueParams",
    "TechniqueSpec",
    "referenced_dataset_ids",
    "referenced_model_ids",
]
