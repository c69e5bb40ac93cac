"""A pruning step's recovery as a table: held-out figures before and after pruning, per epoch, at the end."""

from __future__ import annotations

from typing import Any

from service.report.tables import number


def _cells(figures: Any, columns: list[str]) -> list[str]:
    figures = figures if isinstance(figures, dict) else {}
    return [number(figures.get(column), 4) for column in columns]


def recovery_table(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """Columns and rows (moment, figures) from a step's `recovery` metrics; None without a held-out split."""
    recovery = metrics.get("recovery")
    if not isinstance(recovery, dict) or not isinstance(recovery.get("after_recovery"), dict):
        return None
    stages = [stage for stage in recovery.get("stages") or [] if isinstance(stage, dict)]
    columns = list(recovery["after_recovery"])
    rows = [("original model", _cells(recovery.get("original"), columns))]
    for stage in stages:
        # Iterative pruning has several stages; one-shot pruning needs no stage label.
        label = f"step {stage.get('stage')}: " if len(stages) > 1 else ""
        if "skipped" in stage:
            rows.append((f"{label}skipped ({stage['skipped']})", [""] * len(columns)))
            continue
        rows.append((f"{label}after pruning", _cells(stage.get("after_pruning"), columns)))
        tuning = stage.get("finetune") or {}
        best = tuning.get("best_epoch")
        for epoch in tuning.get("epochs") or []:
            mark = " (best)" if epoch.get("epoch") == best else ""
            rows.append(
                (
                    f"{label}fine-tune epoch {epoch.get('epoch')}{mark}",
                    _cells(epoch.get("validation"), columns),
                )
            )
    rows.append(("after recovery (exported)", _cells(recovery["after_recovery"], columns)))
    return {"columns": columns, "rows": rows}
