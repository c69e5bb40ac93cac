"""Chart.js configurations for the HTML report, built from the report document (pure data)."""

from __future__ import annotations

from typing import Any

BASELINE, CANDIDATE, TRIAL = "#64748b", "#2563eb", "#f59e0b"
SHADES = {"baseline": ("#94a3b8", "#64748b", "#334155"), "candidate": ("#93c5fd", "#3b82f6", "#1e40af")}


def _sorted_batches(*sides: dict[str, Any]) -> list[str]:
    batches = {batch for side in sides for batch in (side.get("latency_ms") or {})}
    return sorted(batches, key=int)


def latency_chart(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """Grouped bars: p50/p95/p99 latency per batch size, original next to compressed."""
    baseline, candidate = comparison.get("baseline") or {}, comparison.get("candidate") or {}
    batches = _sorted_batches(baseline, candidate)
    if not batches:
        return None
    datasets = []
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        for shade, percentile in zip(SHADES[name], ("p50", "p95", "p99"), strict=True):
            values = [((side.get("latency_ms") or {}).get(b) or {}).get(percentile) for b in batches]
            label = f"{'original' if name == 'baseline' else 'compressed'} {percentile}"
            datasets.append({"label": label, "data": values, "backgroundColor": shade})
    return bar([f"batch {b}" for b in batches], datasets, "latency (ms)")


def throughput_chart(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """Bars: samples per second per batch size, original next to compressed."""
    baseline, candidate = comparison.get("baseline") or {}, comparison.get("candidate") or {}
    batches = _sorted_batches(baseline, candidate)
    if not batches:
        return None
    datasets = [
        {
            "label": label,
            "data": [(side.get("throughput_per_s") or {}).get(b) for b in batches],
            "backgroundColor": color,
        }
        for label, side, color in (("original", baseline, BASELINE), ("compressed", candidate, CANDIDATE))
    ]
    return bar([f"batch {b}" for b in batches], datasets, "samples / s")


def quality_points(report: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(axis label, points) for quality against p50 latency at the smallest batch, every candidate."""
    comparison = report.get("comparison") or {}
    baseline, candidate = comparison.get("baseline") or {}, comparison.get("candidate") or {}
    batches = _sorted_batches(baseline, candidate)
    batch = batches[0] if batches else None
    accuracy = {**(baseline.get("accuracy") or {})}
    metric = next(iter(accuracy), None)
    fidelity = (comparison.get("delta") or {}).get("fidelity") or {}
    points: list[dict[str, Any]] = []
    if metric is not None:
        label = f"{metric} accuracy"
        base_quality, cand_quality = accuracy[metric], (candidate.get("accuracy") or {}).get(metric)
    else:
        label = "top-1 agreement with the original"
        base_quality, cand_quality = 1.0, fidelity.get("top1_agreement", fidelity.get("cosine"))
    for name, side, quality, color in (
        ("original", baseline, base_quality, BASELINE),
        ("compressed", candidate, cand_quality, CANDIDATE),
    ):
        latency = ((side.get("latency_ms") or {}).get(batch) or {}).get("p50") if batch else None
        if latency is not None and quality is not None:
            points.append({"label": name, "x": latency, "y": quality, "color": color})
    for step in report.get("steps") or []:
        for index, trial in enumerate((step.get("metrics") or {}).get("trials") or []):
            latency, quality = trial_latency(trial, batch), trial_quality(trial)
            if latency is not None and quality is not None:
                excluded = len(trial.get("excluded_nodes") or [])
                name = f"step {step['index'] + 1} trial {index + 1} ({excluded} nodes kept float)"
                points.append({"label": name, "x": latency, "y": quality, "color": TRIAL})
    return label, points


def trial_latency(trial: dict[str, Any], batch: str | None) -> float | None:
    """A trial's latency in ms: a number, a percentile dict, or per-batch percentile dicts."""
    value = trial.get("latency_ms", trial.get("latency_p50_ms"))
    if isinstance(value, dict) and batch is not None and batch in value:
        value = value[batch]
    if isinstance(value, dict):
        value = value.get("p50", next((v for v in value.values() if isinstance(v, int | float)), None))
    return float(value) if isinstance(value, int | float) else None


def trial_quality(trial: dict[str, Any]) -> float | None:
    """A trial's accuracy (or its fidelity score when it was judged without labels)."""
    for key in ("accuracy", "score", "fidelity", "top1_agreement"):
        value = trial.get(key)
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, int | float)), None)
        if isinstance(value, int | float):
            return float(value)
    return None


def quality_chart(report: dict[str, Any]) -> dict[str, Any] | None:
    """Scatter: quality against latency for the original, the result and every search trial."""
    label, points = quality_points(report)
    if not points:
        return None
    datasets = [
        {
            "label": point["label"],
            "data": [{"x": point["x"], "y": point["y"]}],
            "backgroundColor": point["color"],
            "pointRadius": 7,
        }
        for point in points
    ]
    return {
        "type": "scatter",
        "data": {"datasets": datasets},
        "options": options(
            {
                "x": {"grace": "10%", "title": {"display": True, "text": "p50 latency (ms), smallest batch"}},
                "y": {"grace": "10%", "title": {"display": True, "text": label}},
            },
            legend=len(points) <= 12,
        ),
    }


def bar(
    labels: list[str] | list[list[str]], datasets: list[dict[str, Any]], axis: str, *, legend: bool = True
) -> dict[str, Any]:
    scales = {"y": {"beginAtZero": True, "title": {"display": True, "text": axis}}}
    return {
        "type": "bar",
        "data": {"labels": labels, "datasets": datasets},
        "options": options(scales, legend),
    }


def options(scales: dict[str, Any], legend: bool) -> dict[str, Any]:
    # No animation: the page is often printed or screenshotted straight after it loads.
    return {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": False,
        "plugins": {"legend": {"display": legend, "position": "bottom"}},
        "scales": scales,
    }
