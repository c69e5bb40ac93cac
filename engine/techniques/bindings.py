"""Every catalog entry's module bound to the entry's params model, so that mypy checks each `run`.

The sandbox imports one technique at a time by the module name its catalog entry gives, which no
type checker can follow; this table gives mypy the same pairs. Nothing imports it at run time:
tests/worker/test_technique_contract.py checks that it lists exactly the catalog's entries.
"""

from __future__ import annotations

from typing import Any

from engine.contract import TechniqueBinding
from engine.techniques.build import tensorrt as tensorrt_build
from engine.techniques.export import torch as export_torch
from engine.techniques.prune import magnitude as prune_magnitude
from engine.techniques.prune import nm as prune_nm
from engine.techniques.prune import structured as prune_structured
from engine.techniques.quantize import dynamic as quantize_dynamic
from engine.techniques.quantize import fp16 as quantize_fp16
from engine.techniques.quantize import qat as quantize_qat
from engine.techniques.quantize import static as quantize_static
from engine.techniques.quantize import weight_only as quantize_weight_only
from engine.techniques.quantize.auto import technique as quantize_auto
from engine.techniques.search import run as optimize
from engine.techniques.train import distill
from service.catalog.distill import DistillParams
from service.catalog.export_torch import TorchExportParams
from service.catalog.optimize import OptimizeParams
from service.catalog.prune import MagnitudePruneParams, NMPruneParams, StructuredPruneParams
from service.catalog.quantize import DynamicQuantParams
from service.catalog.quantize_auto import AutoQuantParams
from service.catalog.quantize_fp16 import Fp16Params
from service.catalog.quantize_qat import QatParams
from service.catalog.quantize_static import StaticQuantParams
from service.catalog.quantize_weight_only import WeightOnlyParams
from service.catalog.tensorrt import TensorRTBuildParams

BINDINGS: dict[str, TechniqueBinding[Any]] = {
    "quantize.dynamic": TechniqueBinding[DynamicQuantParams](quantize_dynamic, DynamicQuantParams),
    "quantize.static": TechniqueBinding[StaticQuantParams](quantize_static, StaticQuantParams),
    "quantize.qat": TechniqueBinding[QatParams](quantize_qat, QatParams),
    "quantize.fp16": TechniqueBinding[Fp16Params](quantize_fp16, Fp16Params),
    "quantize.weight_only": TechniqueBinding[WeightOnlyParams](quantize_weight_only, WeightOnlyParams),
    "quantize.auto": TechniqueBinding[AutoQuantParams](quantize_auto, AutoQuantParams),
    "prune.magnitude": TechniqueBinding[MagnitudePruneParams](prune_magnitude, MagnitudePruneParams),
    "prune.nm": TechniqueBinding[NMPruneParams](prune_nm, NMPruneParams),
    "prune.structured": TechniqueBinding[StructuredPruneParams](prune_structured, StructuredPruneParams),
    "export.torch": TechniqueBinding[TorchExportParams](export_torch, TorchExportParams),
    "tensorrt.build": TechniqueBinding[TensorRTBuildParams](tensorrt_build, TensorRTBuildParams),
    "distill": TechniqueBinding[DistillParams](distill, DistillParams),
    "optimize": TechniqueBinding[OptimizeParams](optimize, OptimizeParams),
}
