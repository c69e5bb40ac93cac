"""Entry points the sandbox child calls by name; they take and return JSON-able values."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from service.catalog import CATALOG
from worker.sandbox.child import report_progress
from worker.techniques.base import StepContext, TechniqueError


def run_technique(
    *,
    technique: str,
    model_path: str,
    output_path: str,
    params: dict[str, Any],
    datasets: dict[str, str],
    signature: dict[str, Any],
    threads: int,
) -> dict[str, Any]:
    """Validate params against the catalog, run the technique, return its metrics and warnings."""
    spec = CATALOG.get(technique)
    if spec is None:
        raise TechniqueError("unknown-technique", f"technique '{technique}' is not in this worker's catalog")
    module = importlib.import_module(spec.implementation)
    context = StepContext(
        workdir=Path(output_path).parent,
        datasets={key: Path(value) for key, value in datasets.items()},
        signature=signature,
        threads=threads,
        progress=report_progress,
    )
    outcome = module.run(Path(model_path), Path(output_path), spec.params.model_validate(params), context)
    if not Path(output_path).is_file():
        raise TechniqueError("no-output", f"technique '{technique}' finished without writing a model")
    return {"metrics": outcome.metrics, "warnings": outcome.warnings}
