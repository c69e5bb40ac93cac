"""The technique catalog: names, queues and parameter schemas, with no ML imports."""

from __future__ import annotations

from service.catalog.base import Queue, TechniqueParams, TechniqueSpec, referenced_dataset_ids
from service.catalog.optimize import OPTIMIZE_TECHNIQUES
from service.catalog.prune import PRUNE_TECHNIQUES
from service.catalog.quantize import QUANTIZE_TECHNIQUES
from service.catalog.quantize_auto import AUTO_TECHNIQUES
from service.catalog.quantize_fp16 import FP16_TECHNIQUES
from service.catalog.quantize_static import STATIC_TECHNIQUES

CATALOG: dict[str, TechniqueSpec] = {
    spec.name: spec
    for spec in (
        *QUANTIZE_TECHNIQUES,
        *STATIC_TECHNIQUES,
        *FP16_TECHNIQUES,
        *AUTO_TECHNIQUES,
        *PRUNE_TECHNIQUES,
        *OPTIMIZE_TECHNIQUES,
    )
}

__all__ = ["CATALOG", "Queue", "TechniqueParams", "TechniqueSpec", "referenced_dataset_ids"]
