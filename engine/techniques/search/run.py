"""optimize: build candidate pipelines, measure each within a time budget, keep the best within budget.

Each candidate runs the catalog's own technique modules in this process (the sandbox child), starting
from its prefix's output when another candidate already built it (one pruned model feeds several
quantizations). Every candidate is scored and timed by quantize.auto's judge against the original at the
objective's batch size. The best is the candidate within the accuracy budget that is best on the
objective and not slower than the original (with `drop_confidence: upper_bound`, candidates within it
even at the drop's upper confidence bound first); for a speed objective the candidates close to the
fastest are then timed head to head (runoff.py). Without one the original itself is returned, with
the closest candidate and what it misses by.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.errortext import brief
from engine.evaluate.describe import model_size_bytes
from engine.techniques.quantize.auto.measure import TrialJudge
from engine.techniques.quantize.auto.prepare import save_model
from engine.techniques.search.candidates import Candidate, Step, build
from engine.techniques.search.choice import choose, closest, confidently_within, eligible, qualifying
from engine.techniques.search.frontier import pareto
from engine.techniques.search.runoff import (
    CLOSE,
    MAX_CONTENDERS,
    contenders,
    describe,
    run_off,
    seconds_needed,
)
from service.catalog import CATALOG
from service.catalog.optimize import OptimizeParams

# At most this share of time_budget_s is kept for the run-off.
RUNOFF_SHARE = 0.1


def run(model_path: Path, output_path: Path, params: OptimizeParams, ctx: StepContext) -> StepOutcome:
    """Search the candidates until the budget is spent; write the best to output_path."""
    started = time.monotonic()
    workdir = ctx.workdir / "optimize"
    workdir.mkdir(parents=True, exist_ok=True)
    ctx.progress(0.0, "measuring the original")
    eval_path = ctx.dataset(params.eval_dataset_id or params.dataset_id)
    judge = TrialJudge(
        model_path,
        eval_path,
        dict(ctx.signature) or _signature(model_path),
        params,
        ctx.threads,
        params.batch_size,
    )
    skeleton = onnx.load(str(model_path), load_external_data=False)
    candidates = build(params, {node.op_type for node in skeleton.graph.node}, _labelled(ctx, params))
    trials = [_row(0, (), judge.measure(model_path).__dict__, time.monotonic() - started)]
    built: dict[tuple[Step, ...], Path] = {(): model_path}
    stopped = "every candidate was tried"
    reserve = runoff_reserve_s(params)
    for index, candidate in enumerate(candidates, start=1):
        spent = [row["time_s"] for row in trials[1:] if row["status"] != "skipped"] or [trials[0]["time_s"]]
        if time.monotonic() - started + sum(spent) / len(spent) + reserve > params.time_budget_s:
            kept = f", keeping {reserve:.3g} s for the run-off" if reserve else ""
            stopped = (
                f"time_budget_s ({params.time_budget_s:g} s) would be exceeded by another candidate{kept}"
            )
            trials += [_skipped(i, c) for i, c in enumerate(candidates[index - 1 :], start=index)]
            break
        trials.append(_try(index, candidate, built, judge, ctx, workdir))
        ctx.progress(min(index / len(candidates), 0.99), _summary(trials[-1]))
    return _finish(trials, built, candidates, judge, params, output_path, stopped, started, ctx)


def runoff_reserve_s(params: OptimizeParams) -> float:
    """Seconds kept back for the run-off: the speed objectives' timing of up to five sessions, at most a
    tenth of the budget (its rounds then shrink, down to MIN_ROUNDS each)."""
    if params.objective == "size":
        return 0.0
    return min(params.timing_budget_s * (MAX_CONTENDERS + 1), RUNOFF_SHARE * params.time_budget_s)


def _try(
    index: int,
    candidate: Candidate,
    built: dict[tuple[Step, ...], Path],
    judge: TrialJudge,
    ctx: StepContext,
    workdir: Path,
) -> dict[str, Any]:
    """Build one candidate (from its prefix's cached output) and measure it; a failure becomes its row."""
    began = time.monotonic()
    try:
        path = build_pipeline(candidate.steps, built, ctx, workdir)
        measured = judge.measure(path).__dict__
    except TechniqueError as error:
        return _row(index, candidate.steps, None, time.monotonic() - began, error.detail)
    except Exception as error:
        return _row(index, candidate.steps, None, time.monotonic() - began, brief(error))
    return _row(index, candidate.steps, measured, time.monotonic() - began)


def build_pipeline(
    steps: tuple[Step, ...], built: dict[tuple[Step, ...], Path], ctx: StepContext, workdir: Path
) -> Path:
    """The model after `steps`, running only the steps no earlier candidate ran."""
    if steps in built:
        return built[steps]
    source = build_pipeline(steps[:-1], built, ctx, workdir)
    step = steps[-1]
    # A fresh folder per attempt: a failed build leaves its folder behind and `built` does not grow.
    folder = Path(tempfile.mkdtemp(prefix="build-", dir=workdir))
    spec = CATALOG[step.technique]
    module = importlib.import_module(spec.implementation)
    # The techniques' own progress would move the job's bar backwards in the middle of the search.
    quiet = StepContext(workdir=folder, datasets=ctx.datasets, signature=ctx.signature, threads=ctx.threads)
    output = folder / "model.onnx"
    module.run(source, output, spec.params.model_validate(step.params), quiet)
    built[steps] = output
    return output


def _row(
    index: int, steps: tuple[Step, ...], measured: dict[str, Any] | None, seconds: float, error: str = ""
) -> dict[str, Any]:
    """A trial table row: the steps, and either the measurement or why it failed."""
    row: dict[str, Any] = {"id": index, "steps": [step.as_dict() for step in steps], "time_s": seconds}
    if measured is None:
        return {**row, "status": "failed", "error": error}
    return {
        **row,
        "status": "ok",
        "size_bytes": measured["size_bytes"],
        "latency_ms": measured["latency_percentiles_ms"],
        "speedup": measured["speedup"],
        "accuracy": measured["accuracy"],
        "accuracy_drop": measured["accuracy_drop"],
        "accuracy_drop_bound": measured["accuracy_drop_bound"],
        "within_budget": measured["within_budget"],
    }


def _skipped(index: int, candidate: Candidate) -> dict[str, Any]:
    return {
        "id": index,
        "steps": [step.as_dict() for step in candidate.steps],
        "time_s": 0.0,
        "status": "skipped",
        "error": "the time budget was spent before it started",
    }


def _finish(
    trials: list[dict[str, Any]],
    built: dict[tuple[Step, ...], Path],
    candidates: list[Candidate],
    judge: TrialJudge,
    params: OptimizeParams,
    output_path: Path,
    stopped: str,
    started: float,
    ctx: StepContext,
) -> StepOutcome:
    """Write the best model and report the trial table, the frontier and the choice."""
    upper_bound = params.drop_confidence == "upper_bound"
    best = choose(trials, params.objective, params.max_accuracy_drop, upper_bound=upper_bound)
    warnings: list[str] = []
    choice: dict[str, Any] = {}

    def model_of(ident: int) -> Path:
        return built[() if ident == 0 else candidates[ident - 1].steps]

    if params.objective != "size" and best["id"] != 0:
        best, choice = _run_off(trials, model_of, judge, params, ctx, warnings)
    save_model(model_of(best["id"]), output_path)
    metrics: dict[str, Any] = {
        "objective": params.objective,
        "batch_size": params.batch_size,
        "metric": judge.metric,
        "measured_against": judge.against,
        "eval_samples": judge.samples,
        "baseline_accuracy": judge.baseline_accuracy,
        "baseline_size_bytes": model_size_bytes(built[()]),
        "max_accuracy_drop": params.max_accuracy_drop,
        "trials": trials,
        "frontier": pareto(trials),
        "best": best["id"],
        "accuracy": best["accuracy"],
        "accuracy_drop": best["accuracy_drop"],
        "accuracy_drop_bound": best.get("accuracy_drop_bound"),
        "speedup": best["speedup"],
        "within_accuracy_budget": best["within_budget"],
        "search_stopped": stopped,
        "search_seconds": time.monotonic() - started,
    }
    metrics.update(choice)
    if best["id"] != 0 and not confidently_within(best, params.max_accuracy_drop):
        # Empty under upper_bound: the choice fell back to the measured drop because no candidate was sure.
        max_drop = params.max_accuracy_drop
        sure = [row["id"] for row in qualifying(trials) if confidently_within(row, max_drop)]
        advice = (
            f"; candidates {sure} are within it even there (drop_confidence 'upper_bound')" if sure else ""
        )
        warnings.append(
            f"the chosen candidate's drop ({best['accuracy_drop']:.4g}) is within the budget as measured on"
            f" {judge.samples} samples, but its 95% upper bound ({best['accuracy_drop_bound']:.4g}) is not:"
            f" evaluate it on more data before relying on it{advice}"
        )
    if best["id"] == 0:
        near = closest(trials)
        warnings.append(
            "no candidate met the accuracy budget while running at least as fast as the original;"
            " the original model is returned"
        )
        if near is not None:
            metrics["closest"] = near["id"]
            metrics["misses_by"] = {
                "accuracy_drop": max(near["accuracy_drop"] - params.max_accuracy_drop, 0.0),
                "speedup": max(1.0 - near["speedup"], 0.0),
            }
    # Intermediate models are not needed past this point; the step's workdir is discarded anyway.
    for path in built.values():
        if path != built[()] and path.parent.name.startswith("build-"):
            shutil.rmtree(path.parent, ignore_errors=True)
    return StepOutcome(metrics=metrics, warnings=warnings)


def _run_off(
    trials: list[dict[str, Any]],
    model_of: Callable[[int], Path],
    judge: TrialJudge,
    params: OptimizeParams,
    ctx: StepContext,
    warnings: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The speed objectives' choice: the leader, or the run-off's winner among those close to it."""
    upper_bound = params.drop_confidence == "upper_bound"
    close = contenders(eligible(trials, params.max_accuracy_drop, upper_bound=upper_bound))
    leader = close[0]
    if len(close) < 2:
        alone = f"trial {leader['id']}: no other candidate within {CLOSE:g}x of its speed, no run-off needed"
        return leader, {"choice": alone}
    ids = [row["id"] for row in close]
    reserve = runoff_reserve_s(params)
    if seconds_needed(close) > reserve:
        # Runs this long are each timed many milliseconds at a time, so their own speedups are steadier.
        slow = f"trial {leader['id']}: the fastest as measured (timing {ids} head to head would take"
        return leader, {"choice": f"{slow} over the {reserve:.3g} s kept for it)"}
    ctx.progress(0.99, f"timing candidates {ids} head to head")
    paths = [model_of(ident) for ident in ids]
    seconds_each = reserve / (MAX_CONTENDERS + 1)
    try:
        runoff = run_off(close, paths, judge.timing_feeds, judge.threads, seconds_each, by_bound=upper_bound)
    except Exception as error:  # the search's result stands without it
        warnings.append(f"the run-off between candidates {ids} failed ({brief(error)}); the fastest as"
                        " measured is kept")  # fmt: skip
        return leader, {"choice": f"trial {leader['id']}: the fastest as measured (the run-off failed)"}
    return trials[runoff.chosen], {"runoff": runoff.as_dict(), "choice": describe(runoff)}


def _labelled(ctx: StepContext, params: OptimizeParams) -> bool:
    """Whether the training dataset has labels (pruning's fine-tuning needs them)."""
    with np.load(ctx.dataset(params.dataset_id)) as data:
        return "labels" in data.files


def _summary(row: dict[str, Any]) -> str:
    names = " → ".join(step["technique"] for step in row["steps"])
    if row["status"] != "ok":
        return f"candidate {row['id']} ({names}): {row['status']}"
    return f"candidate {row['id']} ({names}): {row['speedup']:.2f}x, drop {row['accuracy_drop']:.4g}"


def _signature(model_path: Path) -> dict[str, Any]:
    from engine.ingest.summary import signature

    return signature(onnx.load(str(model_path), load_external_data=False))
