"""A model's report across all its jobs: one point per finished job and per search trial, and the frontier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.report.decision import pareto_front, recommendation, trial_points


def job_point(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The job's final model as a point: p50 latency at its smallest batch, loss, size; None if unmeasured."""
    comparison = job.get("comparison") or {}
    candidate, delta = comparison.get("candidate") or {}, comparison.get("delta") or {}
    latencies = candidate.get("latency_ms") or {}
    if not latencies:
        return None
    batch = min(latencies, key=int)
    drop, cosine = delta.get("accuracy_drop"), (delta.get("fidelity") or {}).get("cosine")
    loss = drop if drop is not None else (1.0 - cosine if cosine is not None else None)
    if loss is None:
        return None
    techniques = " then ".join(str(step.get("technique")) for step in job.get("steps") or [])
    return {
        "label": f"job {str(job['job_id'])[:8]}: {techniques}",
        "job_id": job["job_id"],
        "batch": batch,
        "latency_ms": latencies[batch]["p50"],
        "loss": loss,
        "size_bytes": candidate.get("size_bytes"),
        "speedup": (delta.get("speedup") or {}).get(batch),
        "within_accuracy_budget": (comparison.get("verdict") or {}).get("within_accuracy_budget"),
        "recommendation": recommendation(job),
        "chosen": False,
    }


def model_report(model_id: str, jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every measured job and search trial of the model, the frontier over them, and which job to use."""
    points = [point for job in jobs if (point := job_point(job)) is not None]
    trials = [{**trial, "job_id": job["job_id"]} for job in jobs for trial in trial_points(job)]
    front = pareto_front(points)
    for index in front:
        points[index]["frontier"] = True
    best = _best(points, front)
    if best is not None:
        points[points.index(best)]["chosen"] = True
    return {
        "model_id": model_id,
        "jobs": points,
        "trials": trials,
        "frontier": [points[index]["job_id"] for index in front],
        "recommendation": _advice(best, len(points)),
    }


def _best(points: list[dict[str, Any]], front: list[int]) -> dict[str, Any] | None:
    """The fastest frontier job that met its accuracy budget (or had none to meet)."""
    usable = [points[i] for i in front if points[i]["within_accuracy_budget"] is not False]
    return min(usable, key=lambda point: point["latency_ms"], default=None)


def _advice(best: Mapping[str, Any] | None, measured: int) -> str:
    if measured == 0:
        return "No finished job of this model has a comparison yet."
    if best is None:
        return f"None of the {measured} measured jobs met its accuracy budget; keep the original."
    return f"Of {measured} measured jobs, the best trade-off is {best['label']}. {best['recommendation']}"
