"""The evaluation every job gets: original vs final model, measured in the sandbox."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import TechniqueError
from service.catalog import CATALOG
from service.datasets import service as datasets_service
from service.datasets.inspect import check_against_signature
from service.errors import DatasetMismatch
from service.jobs import steps as job_steps
from service.settings import Settings
from worker import files, records
from worker.lease import Lease
from worker.sandbox import SandboxLimits, open_box, run_sandboxed

if TYPE_CHECKING:
    from service.jobs.orm import Job, JobStep


def evaluate_job(
    lease: Lease,
    settings: Settings,
    job: Job,
    original: Path,
    final: Path,
    measured: list[tuple[JobStep, Path]],
    signature: dict[str, Any],
    workdir: Path,
    engine: Path | None = None,
) -> dict[str, Any]:
    """The comparison document, with every step's warnings added to the verdict's.

    `final` is the candidate; `measured` pairs each step that wrote an ONNX model with it, in order;
    `engine` is a TensorRT engine built from `final`, timed on the GPU when the evaluation is on cuda.
    """
    lease.advance("evaluating", len(job.steps) / (len(job.steps) + 1))
    evaluation = job.evaluation or {}
    dataset_path: str | None = None
    if evaluation.get("dataset_id"):
        arrays = records.call(
            datasets_service.stored_dataset, dataset_id=uuid.UUID(evaluation["dataset_id"])
        ).arrays
        try:
            check_against_signature(arrays, signature)
        except DatasetMismatch as exc:
            raise TechniqueError(DatasetMismatch, f"evaluation dataset: {exc.detail}") from None
        dataset_path = files.fetch_datasets([evaluation["dataset_id"]], workdir / "datasets")[
            evaluation["dataset_id"]
        ]
    batch_sizes = evaluation.get("batch_sizes") or [1, 8]
    on_gpu = evaluation.get("device") == "cuda"  # an engine is timed on its GPU only
    with open_box() as box:
        comparison: dict[str, Any] = run_sandboxed(
            "engine.evaluate:compare_models",
            {
                "baseline_path": box.admit(original, f"baseline/{original.name}"),
                "candidate_path": box.admit(final, f"candidate/{final.name}"),
                "signature": signature,
                "dataset_path": box.admit(Path(dataset_path), "dataset.npz") if dataset_path else None,
                "metric": evaluation.get("metric"),
                "batch_sizes": batch_sizes,
                "threads": settings.bench_threads,
                "time_budget_s": settings.bench_time_budget_s,
                "warmup_runs": settings.bench_warmup_runs,
                "min_runs": settings.bench_min_runs,
                "device": evaluation.get("device", "cpu"),
                "engine_path": box.admit(engine, f"engine/{engine.name}") if engine and on_gpu else None,
                "max_accuracy_drop": _budget(evaluation),
                "prompt_length": evaluation.get("prompt_length") or 32,
                "new_tokens": evaluation.get("new_tokens") or 32,
                "steps": [
                    {
                        "index": step.index,
                        "technique": step.technique,
                        "params": step.params,
                        "path": box.admit(output, f"steps/{step.index}/{output.name}"),
                    }
                    for step, output in measured
                ],
            },
            box=box,
            limits=SandboxLimits(
                settings.sandbox_memory_bytes, settings.step_time_limit_s, settings.bench_threads
            ),
            should_cancel=lambda: lease.cancel_requested,
        )
    warnings = comparison.setdefault("verdict", {}).setdefault("warnings", [])
    for step in records.call(job_steps.of_job, job_id=job.id):
        warnings.extend(f"step {step.index} ({step.technique}): {text}" for text in step.warnings or [])
        spec = CATALOG.get(step.technique)
        if spec is not None and not spec.writes_onnx:
            warnings.append(
                f"step {step.index} ({step.technique}) wrote a {spec.output_suffix} file: this comparison is"
                " of the ONNX model it was made from; its own timings are in the step's metrics"
            )
        _fold_step_budget(comparison["verdict"], (step.metrics or {}).get("within_accuracy_budget"))
    return comparison


def _budget(evaluation: dict[str, Any]) -> float | None:
    """The accuracy budget: a language model's perplexity budget when one was given."""
    increase = evaluation.get("max_perplexity_increase")
    return float(increase) if increase is not None else evaluation.get("max_accuracy_drop")


def _fold_step_budget(verdict: dict[str, Any], step_within: object) -> None:
    """A step that checked its own accuracy budget (quantize.auto) speaks for the job's verdict too.

    The verdict is within budget only when every budget that was checked held: a step that missed its
    budget makes it false, and a step that met it answers when the job's evaluation had no budget.
    """
    if not isinstance(step_within, bool):
        return
    current = verdict.get("within_accuracy_budget")
    verdict["within_accuracy_budget"] = step_within and current is not False
