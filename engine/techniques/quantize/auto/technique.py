"""quantize.auto: int8 with the most sensitive nodes kept in float until an accuracy budget holds.

Trial 0 quantizes every node quantize.static (or quantize.dynamic) would; each trial is scored on the
evaluation set and timed against the original. When trial 0 misses the budget and quantized ops without
an int8 kernel, a trial quantizes only the kernel ops; in static mode a model with MatMul, Gemm or
LSTM nodes also gets a dynamic int8 trial (a transformer encoder ran 1.09x static, about 2x dynamic).
When none of these meets the budget, the quantized nodes of the best one are
ranked by the error each adds (quantize/auto/sensitivity.py) and search.py picks how many of the
top ones the next trial keeps in float. The fastest trial within budget wins; without one, the trial
with the least drop, flagged `within_accuracy_budget: false`. `max_trials` and `time_budget_s` bound
the search.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import onnx

from engine.contract import StepContext, StepOutcome
from engine.techniques.quantize.auto import advice as auto_advice
from engine.techniques.quantize.auto.measure import TrialJudge
from engine.techniques.quantize.auto.prepare import prepare, save_model
from engine.techniques.quantize.auto.search import ExclusionSearch, choose
from engine.techniques.quantize.auto.sensitivity import Sensitivity, quantized_nodes, rank_nodes
from engine.techniques.quantize.auto.trials import Trial
from service.catalog.quantize import DynamicQuantParams
from service.catalog.quantize_auto import AutoQuantParams
from service.catalog.quantize_static import StaticQuantParams

REPORTED_SENSITIVITIES = 10
# Op types onnxruntime's CPU provider runs in int8 kernels (QLinearConv, QLinearMatMul, QGemm).
KERNEL_OP_TYPES = ["Conv", "MatMul", "Gemm"]
# Op types dynamic quantization turns into fast int8 kernels (MatMulInteger, DynamicQuantizeLSTM): where a
# model has them, a dynamic trial competes with static ones on speed.
DYNAMIC_KERNEL_OP_TYPES = {"LSTM", "MatMul", "Gemm"}


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
    trials = [_trial(0, prepared, [], Config(params.mode), params, ctx, judge, workdir)]
    ctx.progress(1 / params.max_trials, _summary(trials[0]))
    room = lambda: not _stop_reason(0, trials, params, started)  # noqa: E731 - a trial may start now
    base, quantizable = _base(trials, prepared, params, ctx, judge, workdir, room)
    ranking: list[Sensitivity] = []
    stopped = "the first trial met the budget"
    if any(trial.within_budget for trial in trials[1:]):
        stopped = f"trial {choose(trials).trial} ({choose(trials).config}) met the budget"
    elif not trials[0].within_budget:
        ranking = _rank(prepared, quantizable, judge, workdir, params, base.trial)
        search = ExclusionSearch(len(ranking))
        while True:
            count = search.next_count()
            stopped = _stop_reason(count, trials, params, started)
            if stopped or count is None:
                break
            excluded = [item.node for item in ranking[:count]]
            config = _config(base)
            trials.append(_trial(len(trials), prepared, excluded, config, params, ctx, judge, workdir))
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


@dataclasses.dataclass(frozen=True)
class Config:
    """How a trial quantizes besides its exclusions: the mode, and the op types (None: all)."""

    mode: Literal["static", "dynamic"]
    op_types: list[str] | None = None

    @property
    def label(self) -> str:
        """The trial table's name for it."""
        return f"{self.mode}, int8-kernel ops only" if self.op_types else self.mode


def _base(
    trials: list[Trial],
    prepared: Path,
    params: AutoQuantParams,
    ctx: StepContext,
    judge: TrialJudge,
    workdir: Path,
    room: Callable[[], bool],
) -> tuple[Trial, list[str]]:
    """Run the alternative configurations worth a trial; the one to search from and its quantized nodes.

    A static trial that also quantized ops without an int8 kernel (Add, Mul, Softmax...) and missed the
    budget is followed by one that quantizes only the kernel ops: the others only add rounding (an OCR
    recognizer went from output cosine 0.956 to 0.981, and ran faster). A model with ops dynamic
    quantization runs in int8 kernels (LSTM, MatMul, Gemm) also gets a dynamic trial, which the
    fastest-within-budget rule picks when it beats static.
    """
    skeleton = onnx.load(str(prepared), load_external_data=False)
    quantizable = _quantized(skeleton, trials[0], workdir)
    other_ops = set(_op_types(skeleton, quantizable)) - set(KERNEL_OP_TYPES)
    if params.mode == "static" and not trials[0].within_budget and other_ops and room():
        trials.append(
            _trial(len(trials), prepared, [], Config("static", KERNEL_OP_TYPES), params, ctx, judge, workdir)
        )
    dynamic_kernels = DYNAMIC_KERNEL_OP_TYPES & {node.op_type for node in skeleton.graph.node}
    if params.mode == "static" and params.try_dynamic and dynamic_kernels and room():
        trials.append(_trial(len(trials), prepared, [], Config("dynamic"), params, ctx, judge, workdir))
    base = min(trials, key=lambda trial: (trial.accuracy_drop, -trial.speedup))
    if base.trial != 0:
        quantizable = _quantized(skeleton, base, workdir)
    _keep_only(base, trials, workdir, also=choose(trials))
    return base, quantizable


def _quantized(skeleton: onnx.ModelProto, trial: Trial, workdir: Path) -> list[str]:
    candidate = onnx.load(str(_model(workdir, trial.trial)), load_external_data=False)
    return quantized_nodes(skeleton, candidate, _config(trial).mode)


def _op_types(skeleton: onnx.ModelProto, names: list[str]) -> list[str]:
    kinds = {node.name: node.op_type for node in skeleton.graph.node}
    return [kinds[name] for name in names]


def _config(trial: Trial) -> Config:
    """The configuration a trial ran with, from its label."""
    mode: Literal["static", "dynamic"] = "dynamic" if trial.config.startswith("dynamic") else "static"
    return Config(mode, KERNEL_OP_TYPES if trial.config.endswith("only") else None)


def _trial(
    index: int,
    prepared: Path,
    excluded: list[str],
    config: Config,
    params: AutoQuantParams,
    ctx: StepContext,
    judge: TrialJudge,
    workdir: Path,
) -> Trial:
    """Quantize with `excluded` kept in float, then measure the candidate."""
    from engine.techniques.quantize import dynamic as quantize_dynamic
    from engine.techniques.quantize import static as quantize_static

    began = time.monotonic()
    folder = workdir / f"trial-{index}"
    folder.mkdir()
    # The quantizers' own progress would jump the job to "quantized" in the middle of the search.
    quiet = StepContext(workdir=folder, datasets=ctx.datasets, signature=ctx.signature, threads=ctx.threads)
    if config.mode == "static":
        static = StaticQuantParams(
            dataset_id=params.dataset_id,
            calibration_method=params.calibration_method,
            per_channel=params.per_channel,
            max_calibration_samples=params.max_calibration_samples,
            op_types=config.op_types,
            nodes_to_exclude=excluded,
            preprocess=False,
        )
        outcome = quantize_static.run(prepared, _model(workdir, index), static, quiet)
    else:
        dynamic = DynamicQuantParams(
            per_channel=params.per_channel, nodes_to_exclude=excluded, preprocess=False
        )
        outcome = quantize_dynamic.run(prepared, _model(workdir, index), dynamic, quiet)
    measured = judge.measure(_model(workdir, index))
    return Trial(
        trial=index,
        excluded_nodes=list(excluded),
        seconds=time.monotonic() - began,
        warnings=list(outcome.warnings),
        config=config.label,
        **dataclasses.asdict(measured),
    )


def _rank(
    prepared: Path,
    quantizable: list[str],
    judge: TrialJudge,
    workdir: Path,
    params: AutoQuantParams,
    base: int,
) -> list[Sensitivity]:
    """Quantized nodes of the base trial, most sensitive first."""
    return rank_nodes(
        onnx.load(str(prepared)),
        onnx.load(str(_model(workdir, base))),
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


def _keep_only(best: Trial, trials: list[Trial], workdir: Path, also: Trial | None = None) -> None:
    """Delete the files of every trial but the current choice (and `also`), so disk use stays bounded."""
    kept = {best.trial, best.trial if also is None else also.trial}
    for trial in trials:
        if trial.trial not in kept:
            shutil.rmtree(workdir / f"trial-{trial.trial}", ignore_errors=True)


def _summary(trial: Trial) -> str:
    verdict = "within budget" if trial.within_budget else "over budget"
    return (
        f"trial {trial.trial}: {len(trial.excluded_nodes)} nodes in float, drop {trial.accuracy_drop:.4g}"
        f" ({verdict}), {trial.speedup:.2f}x"
    )


def _signature(model_path: Path) -> dict[str, Any]:
    from engine.ingest.summary import signature

    return signature(onnx.load(str(model_path), load_external_data=False))
