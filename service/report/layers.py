"""Per-layer and per-node charts: sparsity from pruning steps, error from the comparison."""

from __future__ import annotations

from typing import Any

from service.report.charts import BASELINE, CANDIDATE, bar


def per_layer_series(metrics: dict[str, Any]) -> dict[str, tuple[str, dict[str, float]]]:
    """Per-layer figures found in a step's metrics: {key: (axis label, {layer: value})}."""
    found: dict[str, tuple[str, dict[str, float]]] = {}
    sparsity = metrics.get("per_layer_sparsity")
    if isinstance(sparsity, dict) and sparsity:
        found["per_layer_sparsity"] = ("sparsity (fraction of zero weights)", _numbers(sparsity))
    layers = metrics.get("layers")
    if isinstance(layers, dict) and any(isinstance(v, dict) and "sparsity" in v for v in layers.values()):
        values = {k: v["sparsity"] for k, v in layers.items() if isinstance(v, dict) and "sparsity" in v}
        found["layers"] = ("sparsity (fraction of zero weights)", _numbers(values))
    errors = metrics.get("node_errors", metrics.get("per_node_error"))
    if isinstance(errors, list):
        errors = {
            str(e.get("node", e.get("name"))): e.get("error", e.get("relative_error", e.get("value")))
            for e in errors
            if isinstance(e, dict)
        }
    if isinstance(errors, dict) and errors:
        found["node_errors"] = ("error against the float model", _numbers(errors))
    return {key: value for key, value in found.items() if value[1]}


LABEL_WIDTH = 32


def wrap_label(text: str, width: int = LABEL_WIDTH) -> list[str]:
    """A long node name as lines of at most `width` characters, broken after '/' where possible.

    Chart.js draws a list label as several lines; one long string would be clipped at the axis.
    """
    lines, line = [], ""
    for part in text.replace("/", "/\0").split("\0"):
        while len(part) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(part[:width])
            part = part[width:]
        if len(line) + len(part) > width and line:
            lines.append(line)
            line = ""
        line += part
    return [*lines, line] if line else lines or [""]


def per_layer_chart(axis: str, values: dict[str, float]) -> dict[str, Any]:
    """Horizontal bars, one per layer or node."""
    dataset = {"label": axis, "data": list(values.values()), "backgroundColor": CANDIDATE}
    config = bar([wrap_label(name) for name in values], [dataset], axis, legend=False)
    config["options"]["indexAxis"] = "y"
    config["options"]["scales"] = {"x": {"beginAtZero": True, "title": {"display": True, "text": axis}}}
    return config


def node_error_chart(node_errors: Any) -> dict[str, Any] | None:
    """Bars per node, worst first: its output's relative error and the part it added itself."""
    rows = [row for row in node_errors or [] if isinstance(row, dict) and row.get("node")]
    if not rows:
        return None
    datasets = [
        {"label": label, "data": [row.get(key) for row in rows], "backgroundColor": color}
        for label, key, color in (
            ("relative error of the node's output", "relative_error", BASELINE),
            ("error the node added", "added_error", CANDIDATE),
        )
    ]
    labels = [wrap_label(f"{row['node']} ({row.get('op_type', '?')})") for row in rows]
    config = bar(labels, datasets, "relative error")
    config["options"]["indexAxis"] = "y"
    config["options"]["scales"] = {
        "x": {"beginAtZero": True, "title": {"display": True, "text": "relative error"}}
    }
    return config


def _numbers(mapping: dict[str, Any]) -> dict[str, float]:
    return {
        str(k): float(v) for k, v in mapping.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
