"""The report's decision: a recommendation in words, and the trial points a Pareto chart draws."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.report.tables import number

# Below this speedup a difference is within run-to-run noise on a shared CPU (engine.evaluate.verdict).
FASTER = 1.05


def trial_points(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every search trial of the job's steps as {label, latency_ms, accuracy_drop, size_bytes, chosen}.

    Reads quantize.auto's table ({trial, config, latency_ms: number, chosen_trial}) and optimize's
    ({id, steps, latency_ms: {p50, ...}, status, best, frontier}); failed trials have no point.
    """
    points = []
    for step in report.get("steps") or []:
        metrics = step.get("metrics") or {}
        chosen = metrics.get("best", metrics.get("chosen_trial"))
        for trial in metrics.get("trials") or []:
            if trial.get("status", "succeeded") not in ("succeeded", "ok"):
                continue
            latency, loss = _latency(trial.get("latency_ms")), _loss(trial)
            if latency is None or loss is None:
                continue
            ident = trial.get("id", trial.get("trial"))
            points.append(
                {
                    "label": f"step {step['index'] + 1} trial {ident}: {_describe(trial)}",
                    "latency_ms": latency,
                    "loss": loss,
                    "size_bytes": trial.get("size_bytes"),
                    "chosen": ident is not None and ident == chosen,
                }
            )
    return points


def pareto_front(points: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indexes of the points no other point beats on latency, loss and size at once."""
    front = []
    for index, point in enumerate(points):
        if not any(_dominates(other, point) for other in points if other is not point):
            front.append(index)
    return front


def recommendation(report: Mapping[str, Any]) -> str:
    """One sentence: use the result (and why), or keep the original (and why)."""
    comparison = report.get("comparison") or {}
    verdict, delta = comparison.get("verdict") or {}, comparison.get("delta") or {}
    speedups = delta.get("speedup") or {}
    what = " then ".join(_step_name(step) for step in report.get("steps") or []) or "the result"
    quality = _quality_change(comparison)
    if verdict.get("within_accuracy_budget") is False:
        return f"Keep the original: {what} loses too much accuracy ({quality})."
    if not speedups:
        return f"Undecided: {what} could not be timed; {quality}."
    batch, best = max(speedups.items(), key=lambda item: item[1])
    size = f"{number(delta.get('size_ratio'), 2)}x the size"
    if best < FASTER:
        if delta.get("size_ratio") is not None and delta["size_ratio"] < 1:
            slow = f"not faster ({best:.2f}x at batch {batch})"
            return f"Use {what} only to save space: {size}, but {slow}; {quality}."
        return f"Keep the original: {what} is neither faster ({best:.2f}x at batch {batch}) nor smaller."
    return f"Use {what}: {best:.1f}x faster at batch {batch}, {size}, {quality}."


def _step_name(step: Mapping[str, Any]) -> str:
    """The technique, and the trial it chose when it searched (quantize.auto, optimize)."""
    metrics = step.get("metrics") or {}
    chosen = metrics.get("best", metrics.get("chosen_trial"))
    for trial in metrics.get("trials") or []:
        if chosen is not None and trial.get("id", trial.get("trial")) == chosen:
            return f"{step.get('technique')} trial {chosen} ({_describe(trial)})"
    return str(step.get("technique"))


def _quality_change(comparison: Mapping[str, Any]) -> str:
    delta = comparison.get("delta") or {}
    accuracy = (comparison.get("baseline") or {}).get("accuracy") or {}
    drop = delta.get("accuracy_drop")
    if drop is not None and accuracy:
        metric = next(iter(accuracy))
        scale = 100.0 if metric in ("top1", "top5") else 1.0
        unit = " points" if scale == 100.0 else ""
        direction = "lower" if drop > 0 else "higher"
        return f"{abs(drop) * scale:.1f}{unit} {direction} {metric}"
    cosine = (delta.get("fidelity") or {}).get("cosine")
    return (
        f"outputs at cosine {cosine:.4f} to the original's" if cosine is not None else "quality not measured"
    )


def _latency(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("p50")
    return float(value) if isinstance(value, int | float) else None


def _loss(trial: Mapping[str, Any]) -> float | None:
    """Accuracy drop, or 1 - cosine fidelity when the trial was judged without labels."""
    drop = trial.get("accuracy_drop")
    if isinstance(drop, int | float):
        return float(drop)
    fidelity = trial.get("fidelity")
    if isinstance(fidelity, dict):
        fidelity = fidelity.get("cosine")
    return 1.0 - float(fidelity) if isinstance(fidelity, int | float) else None


def _describe(trial: Mapping[str, Any]) -> str:
    if trial.get("steps"):
        return " then ".join(
            str(step.get("technique", step)) if isinstance(step, dict) else str(step)
            for step in trial["steps"]
        )
    excluded = len(trial.get("excluded_nodes") or [])
    return f"{trial.get('config', 'static')}, {excluded} nodes kept float"


def _dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    pairs = [(a["latency_ms"], b["latency_ms"]), (a["loss"], b["loss"])]
    if a.get("size_bytes") is not None and b.get("size_bytes") is not None:
        pairs.append((a["size_bytes"], b["size_bytes"]))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)
