"""Entry points the sandbox child calls by name; they take and return JSON-able values."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from engine.child import report_progress
from engine.contract import StepContext, Technique, TechniqueError
from service.catalog import CATALOG
from service.errors import InvalidParams, UnknownTechnique
from service.failures import NoOutput


def run_technique(
    *,
    technique: str,
    model_path: str,
    output_path: str,
    params: dict[str, Any],
    datasets: dict[str, str],
    signature: dict[str, Any],
    threads: int,
    models: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Validate params against the catalog, run the technique, return its metrics and warnings."""
    spec = CATALOG.get(technique)
    if spec is None:
        raise TechniqueError(UnknownTechnique, f"technique '{technique}' is not in this worker's catalog")
    try:
        validated = spec.params.model_validate(params)
    except ValidationError as exc:
        # The API validated them at submit; a worker of another release may still disagree.
        problem = InvalidParams.from_validation(exc.errors(), prefix=f"{technique}: ")
        raise TechniqueError.carrying(problem) from None
    # The catalog names the module; tests/worker/test_technique_contract.py checks it is a Technique.
    module = cast(Technique[Any], importlib.import_module(spec.implementation))
    context = StepContext(
        workdir=Path(output_path).parent,
        datasets={key: Path(value) for key, value in datasets.items()},
        signature=signature,
        threads=threads,
        progress=report_progress,
        models={key: Path(value) for key, value in (models or {}).items()},
    )
    outcome = module.run(Path(model_path), Path(output_path), validated, context)
    if not Path(output_path).is_file():
        raise TechniqueError(NoOutput, f"technique '{technique}' finished without writing a model")
    return {"metrics": outcome.metrics, "warnings": outcome.warnings}
