"""What quantize.auto tells the user when its result is not what was asked for, and what to try instead."""

from __future__ import annotations

from engine.techniques.quantize.auto.trials import Trial
from service.catalog.quantize_auto import AutoQuantParams

RELATIVE_UNDEFINED = (
    "the original model scores 0 on the metric, so a relative drop is undefined; drops were taken as absolute"
)

SCORED_ON_CALIBRATION = (
    "trials were scored on the calibration dataset, which flatters them; pass eval_dataset_id with"
    " held-out samples for an unbiased accuracy"
)


def over_budget(chosen: Trial, metric: str, params: AutoQuantParams, stopped: str) -> str:
    """The warning for a search that found no candidate within budget, with the levers left to pull."""
    kind = "relative " if params.drop_type == "relative" else ""
    text = (
        f"no candidate met the accuracy budget ({kind}{metric} drop <= {params.max_accuracy_drop:g});"
        f" returned trial {chosen.trial}, the one with the least drop ({chosen.accuracy_drop:.4g}),"
        f" with {len(chosen.excluded_nodes)} nodes kept in float; the search ended: {stopped}"
    )
    hints = []
    if stopped.startswith(("max_trials", "time_budget_s")):
        hints.append("a larger max_trials or time_budget_s")
    if params.mode == "dynamic":
        hints.append('mode "static" (activation ranges calibrated on data)')
    if params.per_channel is not True:
        hints.append("per_channel true")
    if params.mode == "static" and params.calibration_method == "MinMax":
        hints.append('calibration_method "Entropy" or "Percentile" (ranges that ignore outliers)')
    hints.append("quantization-aware training, or a looser max_accuracy_drop")
    return f"{text}. Try {', '.join(hints)}"
