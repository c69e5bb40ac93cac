"""quantize.auto: int8 with the most sensitive nodes kept in float until an accuracy budget holds.

Trial 0 quantizes every node quantize.static (or quantize.dynamic) would; each trial is scored on the
evaluation set and timed against the original. When trial 0 misses the budget, the quantized nodes are
ranked by the error each adds (worker.techniques.sensitivity) and auto_search picks how many of the
top ones the next trial keeps in float. The fastest trial within budget wins; without one, the trial
with the least drop, flagged `within_accuracy_budget: false`. `max_trials` and `time_budget_s` bound
the search.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import onnx

from service.catalog.quantize import DynamicQuantParams
from service.catalog.quantize_auto import AutoQuantParams
from service.catalog.quantize_static import StaticQuantParams
from worker.sandbox.contract import StepContext, StepOutcome
from worker.techniques import auto_advice
from worker.techniques.auto_eval import TrialJudge
from worker.techniques.auto_prepare import prepare, save_model
from worker.techniques.auto_search import ExclusionSearch, Trial, choose
from worker.techniques.sensitivity import Sensitivity, quantized_nodes, rank_nodes

REPORTED_SENSITIVITIES = 10


def run(model_path: Path, output_path: Path, params: AutoQuantParams, ctx: StepContext) -> StepOutcome:
    """Search for the fastest int8 candidate within the accuracy budget and write it to output_path."""
    started = time.monotonic()
    warnings: list[str] = []
    workdir = ctx.workdir / "quantize-auto"
    workdir.mkdir(parents=True, exist_ok=True)
    ctx.progress(0.0, "preparing")
    prepared = prepare(model_path, workdir, params.preprocess, warnings)
    judge = TrialJudge(
        model_path,
        ctx.dataset(params.eval_dataset_id or params.dataset_id),
        dict(ctx.signature) or _signature(model_path),
        params,
        ctx.threads,
    )
    trials = [_trial(0, prepared, [], params, ctx, judge, workdir)]
    ctx.progress(1 / params.max_trials, _summary(trials[0]))
    candidate = onnx.load(str(_model(workdir, 0)), load_external_data=False)
    quantizable = quantized_nodes(onnx.load(str(prepared), load_external_data=False), candidate, params.mode)
    ranking: list[Sensitivity] = []
    stopped = "the first trial met the budget"
    if not trials[0].within_budget:
        ranking = _rank(prepared, quantizable, judge, workdir, params)
        search = ExclusionSearch(len(ranking))
        while True:
            count = search.next_count()
            stopped = _stop_reason(count, trials, params, started)
            if stopped or count is None:
                break
            excluded = [item.node for item in ranking[:count]]
            trials.append(_trial(len(trials), prepared, excluded, params, ctx, judge, workdir))
            search.record(count, trials[-1].within_budget)
            _keep_only(choose(trials), trials, workdir)
            ctx.progress(min(len(trials) / params.max_trials, 0.99), _summary(trials[-1]))

    chosen = choose(trials)
    save_model(_model(workdir, chosen.trial), output_path)
    ctx.progress(1.0, f"chose trial {chosen.trial}")
    warnings += chosen.warnings
    if params.eval_dataset_id is None:
        warnings.append(auto_advice.SCORED_ON_CALIBRATION)
    if judge.relative_undefined:
        warnings.append(auto_advice.RELATIVE_UNDEFINED)
    if not chosen.within_budget:
        warnings.append(auto_advice.over_budget(chosen, judge.metric, params, stopped))
    return StepOutcome(
        metrics={
            "mode": params.mode,
            "metric": judge.metric,
            "measured_against": judge.against,
            "eval_samples": judge.samples,
            "baseline_accuracy": judge.baseline_accuracy,
            "accuracy": chosen.accuracy,
            "accuracy_drop": chosen.accuracy_drop,
            "drop_type": params.drop_type,
            "max_accuracy_drop": params.max_accuracy_drop,
            "within_accuracy_budget": chosen.within_budget,
            "chosen_trial": chosen.trial,
            "excluded_nodes": chosen.excluded_nodes,
            "trials": [trial.as_dict() for trial in trials],
            "quantized_nodes": len(quantizable),
            "sensitivity": [item.as_dict() for item in ranking[:REPORTED_SENSITIVITIES]],
            "search_stopped": stopped,
            "search_seconds": time.monotonic() - started,
        },
        warnings=warnings,
    )


def _trial(
    index: int,
    prepared: Path,
    excluded: list[str],
    params: AutoQuantParams,
    ctx: StepContext,
    judge: TrialJudge,
    workdir: Path,
) -> Trial:
    """Quantize with `excluded` kept in float, then measure the candidate."""
    from worker.techniques import quantize_dynamic, quantize_static

    began = time.monotonic()
    folder = workdir / f"trial-{index}"
    folder.mkdir()
    # The quantizers' own progress would jump the job to "quantized" in the middle of the search.
    quiet = StepContext(workdir=folder, datasets=ctx.datasets, signature=ctx.signature, threads=ctx.threads)
    if params.mode == "static":
        static = StaticQuantParams(
            dataset_id=params.dataset_id,
            calibration_method=params.calibration_method,
            per_channel=params.per_channel,
            max_calibration_samples=params.max_calibration_samples,
            nodes_to_exclude=excluded,
            preprocess=False,
        )
        outcome = quantize_static.run(prepared, _model(workdir, index), static, quiet)
    else:
        dynamic = DynamicQuantParams(
            per_channel=params.per_channel is True, nodes_to_exclude=excluded, preprocess=False
        )
        outcome = quantize_dynamic.run(prepared, _model(workdir, index), dynamic, quiet)
    measured = judge.measure(_model(workdir, index))
    return Trial(
        trial=index,
        excluded_nodes=list(excluded),
        seconds=time.monotonic() - began,
        warnings=list(outcome.warnings),
        **dataclasses.asdict(measured),
    )


def _rank(
    prepared: Path, quantizable: list[str], judge: TrialJudge, workdir: Path, params: AutoQuantParams
) -> list[Sensitivity]:
    """Quantized nodes of trial 0, most sensitive first."""
    return rank_nodes(
        onnx.load(str(prepared)),
        onnx.load(str(_model(workdir, 0))),
        quantizable,
        judge.arrays,
        threads=judge.threads,
        budget_s=params.timing_budget_s,
    )


def _stop_reason(count: int | None, trials: list[Trial], params: AutoQuantParams, started: float) -> str:
    """Why the search ends now, or "" to go on."""
    if count is None:
        met = any(trial.within_budget for trial in trials)
        return "search finished" if met else "no node left to exclude"
    if len(trials) >= params.max_trials:
        return f"max_trials ({params.max_trials}) reached"
    typical = sum(trial.seconds for trial in trials) / len(trials)
    if time.monotonic() - started + typical > params.time_budget_s:
        return f"time_budget_s ({params.time_budget_s:g} s) would be exceeded by another trial"
    return ""


def _model(workdir: Path, index: int) -> Path:
    return workdir / f"trial-{index}" / "model.onnx"


def _keep_only(best: Trial, trials: list[Trial], workdir: Path) -> None:
    """Delete the files of every trial but the current choice, so disk use stays one candidate."""
    for trial in trials:
        if trial.trial != best.trial:
            shutil.rmtree(workdir / f"trial-{trial.trial}", ignore_errors=True)


def _summary(trial: Trial) -> str:
    verdict = "within budget" if trial.within_budget else "over budget"
    return (
        f"trial {trial.trial}: {len(trial.excluded_nodes)} nodes in float, drop {trial.accuracy_drop:.4g}"
        f" ({verdict}), {trial.speedup:.2f}x"
    )


def _signature(model_path: Path) -> dict[str, Any]:
    from worker.ingest.summary import signature

    return signature(onnx.load(str(model_path), load_external_data=False))
