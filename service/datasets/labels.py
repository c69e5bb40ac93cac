"""Class labels must index the model's classes: checked at submit from the ranges the upload scan kept."""

from __future__ import annotations

from typing import Any

from service.datasets.inspect import LABELS
from service.errors import DatasetMismatch

# Perplexity scores token ids, which are not class labels of the first output.
REGRESSION_METRICS = frozenset({"mse", "mae", "perplexity"})


def check_label_range(
    arrays: dict[str, dict[str, Any]], signature: dict[str, Any], *, metric: str | None, where: str
) -> None:
    """422 when integer labels, used as classes, fall outside the first output's class axis.

    Labels are classes unless the metric is a regression one; the class axis is the output's last
    one when the labels have one axis fewer (per sample, or per position). Anything else (a symbolic
    class count, classes on another axis) is left to the worker, which checks the values it scores.
    """
    labels = arrays.get(LABELS) or {}
    if "min" not in labels or metric in REGRESSION_METRICS or not signature.get("outputs"):
        return
    output = signature["outputs"][0]
    shape = output.get("shape")
    if not shape or len(shape) != len(labels["shape"]) + 1 or not isinstance(shape[-1], int):
        return
    classes = shape[-1]
    if labels["min"] < 0 or labels["max"] >= classes:
        raise DatasetMismatch(
            f"{where}: labels range from {labels['min']} to {labels['max']}, but the model's output"
            f" '{output['name']}' scores {classes} classes (labels 0 to {classes - 1})",
            labels={"min": labels["min"], "max": labels["max"]},
            classes=classes,
        )
