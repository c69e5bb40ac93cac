"""Charts and rows of the decision page: the Pareto chart of trials, the profile, the per-step table."""

from __future__ import annotations

from typing import Any

from service.report.charts import BASELINE, CANDIDATE, TRIAL, options
from service.report.decision import pareto_front, trial_points
from service.report.tables import number

FRONTIER = "#16a34a"
TOP_OP_TYPES = 12


def pareto_chart(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Scatter of loss against latency: every trial, the frontier joined by a line, the chosen one ringed."""
    if len(points) < 2:
        return None
    front = sorted((points[i] for i in pareto_front(points)), key=lambda point: point["latency_ms"])
    datasets = [
        {
            "label": "frontier",
            "type": "line",
            "data": [{"x": p["latency_ms"], "y": p["loss"]} for p in front],
            "borderColor": FRONTIER,
            "backgroundColor": FRONTIER,
            "pointRadius": 6,
        },
        {
            "label": "trials",
            "data": [{"x": p["latency_ms"], "y": p["loss"], "label": p["label"]} for p in points],
            "backgroundColor": TRIAL,
            "pointRadius": 5,
        },
    ]
    chosen = [p for p in points if p["chosen"]]
    if chosen:
        datasets.append(
            {
                "label": "chosen",
                "data": [{"x": p["latency_ms"], "y": p["loss"]} for p in chosen],
                "backgroundColor": "rgba(0,0,0,0)",
                "borderColor": CANDIDATE,
                "borderWidth": 3,
                "pointRadius": 10,
            }
        )
    scales = {
        "x": {"grace": "10%", "title": {"display": True, "text": "p50 latency (ms)"}},
        "y": {"grace": "10%", "title": {"display": True, "text": "accuracy drop (or 1 - cosine)"}},
    }
    return {"type": "scatter", "data": {"datasets": datasets}, "options": options(scales, True)}


def report_pareto(report: dict[str, Any]) -> dict[str, Any] | None:
    """The Pareto chart of the job's search trials; None when the job searched nothing."""
    return pareto_chart(trial_points(report))


def profile_chart(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """Horizontal bars: ms per run in each op type, original next to compressed, largest first."""
    profile = comparison.get("profile")
    if not profile:
        return None
    rows = sorted(profile["delta"], key=lambda row: -max(row["baseline_ms"], row["candidate_ms"]))[
        :TOP_OP_TYPES
    ]
    datasets = [
        {"label": label, "data": [row[key] for row in rows], "backgroundColor": color}
        for label, key, color in (
            ("original", "baseline_ms", BASELINE),
            ("compressed", "candidate_ms", CANDIDATE),
        )
    ]
    scales = {"x": {"beginAtZero": True, "title": {"display": True, "text": "ms per run"}}}
    config = {
        "type": "bar",
        "data": {"labels": [row["op_type"] for row in rows], "datasets": datasets},
        "options": {**options(scales, True), "indexAxis": "y"},
    }
    return config


def profile_summary(comparison: dict[str, Any]) -> str:
    """One line: total node time of each model, and the candidate's Q/DQ and fp32-fallback share."""
    profile = comparison.get("profile")
    if not profile:
        return ""
    qdq, fallback = profile["quantize_dequantize"], profile["fp32_fallback"]
    text = (
        f"At batch {profile['batch']}: {number(profile['baseline']['total_ms'], 3)} ms of node time per run"
        f" in the original, {number(profile['candidate']['total_ms'], 3)} ms in the compressed model,"
        f" of which {qdq['share']:.0%} in inserted Quantize/DequantizeLinear nodes"
    )
    if fallback["op_types"]:
        text += f" and {fallback['share']:.0%} in layers left in fp32 ({', '.join(fallback['op_types'])})"
    return text + "."


def per_step_rows(comparison: dict[str, Any]) -> list[dict[str, str]]:
    """One row per step: what its output measured, and what the step added against its input."""
    rows = []
    for step in comparison.get("per_step") or []:
        added = step["added"]
        batch = max(added["speedup"], key=int, default=None)
        drop = added.get("accuracy_drop")
        metric = next(iter(step.get("accuracy") or {}), None)
        rows.append(
            {
                "step": f"{step['index'] + 1}. {step['technique']}",
                "size": number(step["size_bytes"], 0),
                "size_ratio": f"{number(added['size_ratio'], 3)}x",
                "speedup": f"{number(added['speedup'][batch], 2)}x at batch {batch}" if batch else "-",
                "quality": (
                    f"{metric} {number(step['accuracy'][metric], 4)}"
                    if metric
                    else f"cosine {number(step['fidelity'].get('cosine'), 4)}"
                ),
                "added_loss": number(drop if drop is not None else added.get("cosine_loss"), 4),
            }
        )
    return rows
