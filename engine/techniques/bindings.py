"""Every catalog entry's module bound to the entry's params model, so that mypy checks each `run`.

The sandbox imports one technique at a time by the module name its catalog entry gives, which no
type checker can follow; this table gives mypy the same pairs. Nothing imports it at run time:
tests/worker/test_technique_contract.py checks that it lists exactly the catalog's entries.
"""

from __future__ import annotations

from typing import Any

from engine.contract import TechniqueBinding
from engine.techniques.prune import magnitude as prune_magnitude
from engine.techniques.prune import nm as prune_nm
from engine.techniques.prune import structured as prune_structured
from engine.techniques.quantize import dynamic as quantize_dynamic
from engine.techniques.quantize import fp16 as quantize_fp16
from engine.techniques.quantize import static as quantize_static
from engine.techniques.quantize.auto import technique as quantize_auto
from engine.techniques.search import run as optimize
from service.catalog.optimize import OptimizeParams
from service.catalog.prune import MagnitudePruneParams, NMPruneParams, StructuredPruneParams
from service.catalog.quantize import DynamicQuantParams
from service.catalog.quantize_auto import AutoQuantParams
from service.catalog.quantize_fp16 import Fp16Params
from service.catalog.quantize_static import StaticQuantParams

BINDINGS: dict[str, TechniqueBinding[Any]] = {
    "quantize.dynamic": TechniqueBinding[DynamicQuantParams](quantize_dynamic, DynamicQuantParams),
    "quantize.static": TechniqueBinding[StaticQuantParams](quantize_static, StaticQuantParams),
    "quantize.fp16": TechniqueBinding[Fp16Params](quantize_fp16, Fp16Params),
    "quantize.auto": TechniqueBinding[AutoQuantParams](quantize_auto, AutoQuantParams),
    "prune.magnitude": TechniqueBinding[MagnitudePruneParams](prune_magnitude, MagnitudePruneParams),
    "prune.nm": TechniqueBinding[NMPruneParams](prune_nm, NMPruneParams),
    "prune.structured": TechniqueBinding[StructuredPruneParams](prune_structured, StructuredPruneParams),
    "optimize": TechniqueBinding[OptimizeParams](optimize, OptimizeParams),
}
