"""Plain-English judgement of a comparison, computed from its numbers alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.evaluate import advice
from engine.evaluate.accuracy import within_budget
from engine.evaluate.attribution import responsible_step
from engine.evaluate.precision import DYNAMIC_INT8, STATIC_INT8
from engine.evaluate.recurrent_verdict import recurrent_warnings
from engine.evaluate.step_advice import effective_params, step_hint

# Below this speedup a difference is within run-to-run noise on a shared CPU.
FASTER_THRESHOLD = 1.05
LOW_COSINE = 0.99
LOW_AGREEMENT = 0.99
# Techniques whose result quantize.auto can search around.
SEARCHABLE = ("quantize.static", "quantize.dynamic")


def judge(
    *,
    size_ratio: float,
    speedup: Mapping[str, float],
    accuracy_drop: float | None,
    max_accuracy_drop: float | None,
    metric: str | None,
    fidelity: Mapping[str, Any],
    baseline_ops: Mapping[str, int],
    candidate_ops: Mapping[str, int],
    notes: Sequence[str] = (),
    candidate_kind: str | None = None,
    density: float | None = None,
    node_errors: Sequence[Mapping[str, Any]] = (),
    steps: Sequence[Mapping[str, Any]] = (),
    attribution: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The verdict object: smaller, faster, within_accuracy_budget and warnings.

    `candidate_kind` (engine.evaluate.precision) and `density` (the candidate's share of non-zero
    weights) let a warning name the technique to try instead; `node_errors` where the error starts.
    `steps` ({index, technique, params}) and their `attribution` (engine.evaluate.attribution) let the
    advice name the step responsible and only settings of it that it did not already use.
    """
    warnings = list(notes)
    smaller = size_ratio < 1.0
    if not smaller:
        warnings.append(f"candidate is not smaller than the original ({size_ratio:.2f}x the size)")
        warnings += _some(advice.not_smaller(candidate_kind, density))
    warnings += _speed_warnings(speedup, baseline_ops, candidate_ops)
    faster = bool(speedup) and all(value >= FASTER_THRESHOLD for value in speedup.values())
    if speedup and not faster and candidate_kind != DYNAMIC_INT8:
        warnings += _some(advice.not_faster(candidate_kind, _used_op_types(steps)))
    if steps:
        hint = _step_hint(steps, attribution, node_errors, baseline_ops, metric, max_accuracy_drop)
    else:
        hint = advice.over_budget(candidate_kind, max_accuracy_drop, node_errors) if candidate_kind else ""
    within = None
    if max_accuracy_drop is not None and accuracy_drop is not None:
        within = within_budget(accuracy_drop, max_accuracy_drop)
        if not within:
            warnings.append(
                _over_budget_text(metric, accuracy_drop, max_accuracy_drop) + (f"; {hint}" if hint else "")
            )
    elif max_accuracy_drop is not None:
        warnings.append(
            "the dataset has no labels, so the accuracy budget was not checked; judge by fidelity"
            f" ({_fidelity_summary(fidelity)})"
        )
    warnings += _fidelity_warnings(fidelity, hint)
    quantized = candidate_kind in (DYNAMIC_INT8, STATIC_INT8)
    warnings += recurrent_warnings(
        baseline_ops=baseline_ops, candidate_ops=candidate_ops, quantized=quantized, faster=faster,
        fidelity=fidelity, low_cosine=LOW_COSINE, over_budget=within is False,
    )  # fmt: skip
    return {"smaller": smaller, "faster": faster, "within_accuracy_budget": within, "warnings": warnings}


def _over_budget_text(metric: str | None, drop: float, budget: float) -> str:
    # Perplexity's drop is a relative increase: lower is better, and a percentage reads naturally.
    if metric == "perplexity":
        return f"perplexity rose by {drop:.1%}, more than the allowed {budget:.1%}"
    return f"{metric} dropped by {drop:.4f}, more than the allowed {budget:.4f}"


def _step_hint(
    steps: Sequence[Mapping[str, Any]],
    attribution: Sequence[Mapping[str, Any]],
    node_errors: Sequence[Mapping[str, Any]],
    baseline_ops: Mapping[str, int],
    metric: str | None,
    max_accuracy_drop: float | None,
) -> str:
    """The responsible step and what of its own settings to try, with where the error starts."""
    if len(steps) == 1:
        step, why = steps[0], "is where the loss comes from"
    else:
        found = responsible_step(attribution)
        if found is None:
            return ""
        step = next(entry for entry in steps if entry["index"] == found["index"])
        added = found["added"]
        why = (
            f"lost the most ({metric} down {added['accuracy_drop']:.4f})"
            if added["accuracy_drop"] is not None
            else f"lost the most (cosine down {added['cosine_loss']:.4f})"
        )
    quantizing = str(step["technique"]).startswith("quantize.")
    errors = node_errors if quantizing else ()
    parts = _some(step_hint(step, errors, baseline_ops, why) or None)
    if step["technique"] in SEARCHABLE:
        budget = f"max_accuracy_drop={max_accuracy_drop:g}" if max_accuracy_drop is not None else "a budget"
        parts.append(f"or quantize.auto with {budget} (searches which nodes to keep in float)")
    location = advice.error_location(errors)
    return "; ".join(parts + _some(location or None))


def _used_op_types(steps: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The op types the last quantization step restricted itself to, if it did."""
    for step in reversed(steps):
        if str(step["technique"]).startswith("quantize."):
            used = effective_params(str(step["technique"]), step.get("params") or {}) or {}
            return used.get("op_types")
    return None


def _speed_warnings(
    speedup: Mapping[str, float], baseline_ops: Mapping[str, int], candidate_ops: Mapping[str, int]
) -> list[str]:
    if not speedup:
        return ["no batch size could be timed, so speed was not compared"]
    warnings = []
    for batch, value in speedup.items():
        if value < 1.0:
            warnings.append(f"candidate is not faster than the original at batch {batch} ({value:.2f}x)")
        elif value < FASTER_THRESHOLD:
            warnings.append(f"candidate is about as fast as the original at batch {batch} ({value:.2f}x)")
    slower = any(value < 1.0 for value in speedup.values())
    if slower and candidate_ops.get("ConvInteger", 0) and baseline_ops.get("Conv", 0):
        warnings.append("dynamic int8 is slower than fp32 for this convolutional model; try quantize.static")
    elif slower and candidate_ops.get("DynamicQuantizeLinear", 0):
        warnings.append(
            "dynamic quantization converts activations to int8 at run time; for layers this small"
            " the conversion costs more than the int8 arithmetic saves; try quantize.static, whose"
            " activation ranges are calibrated ahead of time"
        )
    return warnings


def _fidelity_warnings(fidelity: Mapping[str, Any], hint: str) -> list[str]:
    cosine, agreement = fidelity.get("cosine"), fidelity.get("top1_agreement")
    if cosine is None:
        return ["the candidate's first output has a different shape, so fidelity was not measured"]
    if cosine < LOW_COSINE or (agreement is not None and agreement < LOW_AGREEMENT):
        text = (
            f"the candidate's outputs differ noticeably from the original's ({_fidelity_summary(fidelity)})"
        )
        return [f"{text}; {hint}" if hint else text]
    return []


def _fidelity_summary(fidelity: Mapping[str, Any]) -> str:
    parts = [f"worst output {fidelity['output']}"] if fidelity.get("output") else []
    if fidelity.get("cosine") is not None:
        parts.append(f"cosine similarity {fidelity['cosine']:.4f}")
    if fidelity.get("top1_agreement") is not None:
        parts.append(f"top-1 agreement {fidelity['top1_agreement']:.3f}")
    return ", ".join(parts) or "not measured"


def _some(text: str | None) -> list[str]:
    return [text] if text else []
