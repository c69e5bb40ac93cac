"""Side-by-side comparison of an original model and a compressed candidate (DESIGN.md §4)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from engine.contract import TechniqueError
from engine.evaluate import accuracy as acc
from engine.evaluate.attribution import measure_steps
from engine.evaluate.benchmark import PairTiming, percentiles, size_and_speed_ratios, throughput, time_pair
from engine.evaluate.cuda import cuda_latency, require_cuda
from engine.evaluate.decoder_compare import compare_decoders
from engine.evaluate.describe import describe_loaded, op_histogram
from engine.evaluate.environment import environment
from engine.evaluate.fidelity import fidelity, fidelity_per_output, worst_output
from engine.evaluate.inputs import EvalData, explained, fixed_batch, load_eval_data, take
from engine.evaluate.memory import peak_memory_bytes
from engine.evaluate.node_errors import node_errors
from engine.evaluate.precision import DYNAMIC_INT8, STATIC_INT8, WEIGHT_ONLY, precision_kind
from engine.evaluate.profile import compare_profiles, profile_model
from engine.evaluate.sessions import CHUNK, all_outputs, feeds_for, make_session, run_checked
from engine.evaluate.tensorrt_engine import engine_latency
from engine.evaluate.verdict import judge
from service.errors import InvalidParams


def compare_models(
    baseline_path: str,
    candidate_path: str,
    *,
    signature: dict[str, Any],
    dataset_path: str | None,
    metric: str | None,
    batch_sizes: list[int],
    threads: int,
    time_budget_s: float,
    warmup_runs: int,
    min_runs: int,
    max_accuracy_drop: float | None,
    device: str = "cpu",
    engine_path: str | None = None,
    prompt_length: int = 32,
    new_tokens: int = 32,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Measure both models on this machine, interleaved, and return the comparison object.

    With `device="cuda"` the comparison also carries `gpu`: both models timed on this worker's GPU
    through torch (engine.evaluate.cuda), after the CPU measurements (accuracy stays onnxruntime's);
    with an `engine_path` too, `gpu.engine` times that TensorRT engine against the baseline there
    (engine.evaluate.tensorrt_engine).

    Each batch size gets `warmup_runs` untimed runs per model, then alternating timed runs until
    `time_budget_s` is spent (never fewer than 3); when the budget allows fewer than `min_runs`,
    the verdict says that batch's percentiles are rough.

    Accuracy and fidelity run over the evaluation samples in chunks of 64 (or the model's fixed
    batch size): dynamic quantization picks activation scales per batch, so scores depend slightly
    on how samples are grouped, and a fixed grouping keeps them reproducible.

    `profile` is both models' onnxruntime profile at the largest timed batch, run after the timing
    (engine.evaluate.profile).

    `steps` ({index, technique, params, path}: each step's output, the last being the candidate) name
    the job's steps: the advice names the responsible one, and with two or more, `per_step` measures
    every step's output alike so each step's gain or cost shows (engine.evaluate.attribution).

    `delta.fidelity` is the worst output's (lowest cosine), so a detector's class scores cannot hide
    behind its box coordinates; a model with several outputs also gets `delta.fidelity_per_output`.

    When the candidate holds quantized or float16 nodes, `node_errors` lists the nodes whose outputs
    diverge most from the original's (engine.evaluate.node_errors, within `time_budget_s`); else None.

    A decoder (the signature's `decoder` entry, engine.ingest.decoder) is compared as a language
    model instead: perplexity and generation speed (engine.evaluate.decoder_compare).
    """
    if signature.get("decoder") is not None:
        return compare_decoders(
            (Path(baseline_path), Path(candidate_path)), signature["decoder"], dataset_path=dataset_path,
            metric=metric, batch_sizes=batch_sizes, prompt_length=prompt_length, new_tokens=new_tokens,
            threads=threads, time_budget_s=time_budget_s, warmup_runs=warmup_runs,
            max_accuracy_drop=max_accuracy_drop,
        )  # fmt: skip
    if metric is not None:
        acc.check_metric(metric)
    if not batch_sizes or min(batch_sizes) < 1:
        raise TechniqueError(InvalidParams, f"batch sizes must be positive integers, not {batch_sizes}")
    paths = (Path(baseline_path), Path(candidate_path))
    models = [onnx.load(str(path)) for path in paths]
    sides = [describe_loaded(model, path) for model, path in zip(models, paths, strict=True)]
    if device == "cuda":
        require_cuda()  # before any CPU work: a job that landed on a CPU box says so at once
    sessions = [make_session(path, threads) for path in paths]
    # Generated inputs take a size the original runs at; the candidate must run there too.
    fixed = fixed_batch(signature)
    try:
        data = load_eval_data(signature, dataset_path, probe=partial(run_checked, sessions[0], quiet=True))
        every = [all_outputs(sessions[0], data.arrays, fixed or CHUNK)]
    except TechniqueError as error:  # the original does not run on these samples: say why if we can
        raise explained(error, signature) from None
    every.append(all_outputs(sessions[1], data.arrays, fixed or CHUNK))
    outputs = [each[0] for each in every]
    notes: list[str] = []
    metric_name, scores = _accuracy(metric, data, outputs, notes)
    timings = _time_batches(
        sessions, data, batch_sizes, fixed, warmup_runs=warmup_runs, budget_s=time_budget_s,
        min_runs=min_runs, notes=notes,
    )  # fmt: skip

    memory_feeds = take(data.arrays, 0, max((int(batch) for batch in timings), default=fixed or 1))
    for which, side in enumerate(sides):
        latencies = {batch: timing.of(which) for batch, timing in timings.items()}
        side["latency_ms"] = {batch: percentiles(ms) for batch, ms in latencies.items()}
        side["throughput_per_s"] = {batch: throughput(ms, int(batch)) for batch, ms in latencies.items()}
        side["peak_memory_bytes"] = peak_memory_bytes(paths[which], memory_feeds, threads)
        side["accuracy"] = {metric_name: scores[which]} if metric_name and scores else {}
        if side["peak_memory_bytes"] is None:
            notes.append(f"peak memory of the {('original', 'candidate')[which]} model could not be measured")

    baseline, candidate = sides
    candidate_ops = op_histogram(models[1])
    kind = precision_kind(models[1], candidate_ops)
    errors = None
    if kind is not None:
        errors = node_errors(models[0], models[1], data.arrays, threads=threads, budget_s=time_budget_s)
    per_step = None
    if steps and len(steps) > 1:
        per_step = measure_steps(
            paths[0], steps, data, batches=[int(batch) for batch in timings], fixed=fixed, metric=metric_name,
            threads=threads, budget_s=time_budget_s, warmup_runs=warmup_runs,
        )  # fmt: skip
    profile = _profile(paths, data, timings, fixed, threads, time_budget_s, quantized=kind in _INT8_KINDS)
    delta = {
        **size_and_speed_ratios(baseline, candidate, timings),
        "accuracy_drop": acc.accuracy_drop(metric_name, *scores) if metric_name and scores else None,
    }
    per_output = fidelity_per_output([meta.name for meta in sessions[0].get_outputs()], *every)
    delta["fidelity"] = fidelity(*outputs)
    if len(per_output) > 1:
        delta["fidelity"] = worst_output(per_output) or delta["fidelity"]
        delta["fidelity_per_output"] = per_output
    verdict = judge(
        size_ratio=delta["size_ratio"],
        speedup=delta["speedup"],
        accuracy_drop=delta["accuracy_drop"],
        max_accuracy_drop=max_accuracy_drop,
        metric=metric_name,
        fidelity=delta["fidelity"],
        baseline_ops=op_histogram(models[0]),
        candidate_ops=candidate_ops,
        notes=notes,
        candidate_kind=kind,
        density=candidate["nonzero_parameters"] / max(candidate["parameters"], 1),
        node_errors=errors or (),
        steps=[{key: step[key] for key in ("index", "technique", "params")} for step in steps or ()],
        attribution=per_step or (),
    )
    comparison = {
        "baseline": baseline,
        "candidate": candidate,
        "delta": delta,
        "verdict": verdict,
        "node_errors": errors,
        "profile": profile,
        "per_step": per_step,
        "environment": environment(threads),
    }
    if device == "cuda":
        batches = [int(batch) for batch in timings]
        gpu = cuda_latency(list(paths), batches, warmup_runs=warmup_runs, budget_s=time_budget_s)
        if engine_path is not None:
            gpu["engine"] = _engine_timing(Path(engine_path), paths[0], batches, warmup_runs, time_budget_s)
            if "error" in gpu["engine"]:
                verdict["warnings"].append(f"the TensorRT engine was not timed: {gpu['engine']['detail']}")
        comparison["gpu"] = gpu
    return comparison


_INT8_KINDS = (DYNAMIC_INT8, STATIC_INT8, WEIGHT_ONLY)


def _engine_timing(
    engine: Path, baseline: Path, batches: list[int], warmup_runs: int, budget_s: float
) -> dict[str, Any]:
    """The engine's GPU timing, or why there is none: the job's other figures stand either way.

    This worker may lack TensorRT or be another GPU class than the engine was built for.
    """
    try:
        return engine_latency(engine, baseline, batches, warmup_runs=warmup_runs, budget_s=budget_s)
    except TechniqueError as error:
        return {"error": error.slug, "detail": error.detail}


def _profile(
    paths: tuple[Path, Path],
    data: EvalData,
    timings: dict[str, PairTiming],
    fixed: int | None,
    threads: int,
    budget_s: float,
    *,
    quantized: bool,
) -> dict[str, Any] | None:
    """Both models' per-operator profiles at the largest timed batch; None when no batch was timed."""
    if not timings:
        return None
    batch = max(int(key) for key in timings)
    feeds = take(data.arrays, 0, fixed or batch)
    sides = [profile_model(path, feeds, threads=threads, budget_s=budget_s / 2) for path in paths]
    return {"batch": str(batch), **compare_profiles(*sides, quantized=quantized)}


def _time_batches(
    sessions: list[ort.InferenceSession],
    data: EvalData,
    batch_sizes: list[int],
    fixed: int | None,
    *,
    warmup_runs: int,
    budget_s: float,
    min_runs: int,
    notes: list[str],
) -> dict[str, PairTiming]:
    """Interleaved timings per batch size, keyed by the batch size as a string."""
    timings: dict[str, PairTiming] = {}
    for batch in dict.fromkeys(batch_sizes):
        if fixed is not None and batch != fixed:
            notes.append(f"the model has a fixed batch size of {fixed}, so batch {batch} was not measured")
            continue
        runs = [partial(s.run, None, feeds_for(s, take(data.arrays, 0, batch))) for s in sessions]
        timing = time_pair(*runs, warmup_runs=warmup_runs, budget_s=budget_s)
        if timing.rounds < min_runs:
            notes.append(
                f"only {timing.rounds} timed runs per model fit in the {budget_s:g} s budget at batch"
                f" {batch} (wanted {min_runs}); its percentiles are rough"
            )
        timings[str(batch)] = timing
    return timings


def _accuracy(
    metric: str | None, data: EvalData, outputs: list[np.ndarray], notes: list[str]
) -> tuple[str | None, tuple[float, float] | None]:
    """The metric used and both models' scores; (None, None) when the dataset has no labels."""
    if data.labels is None:
        if metric is not None:
            notes.append(
                f"{metric} was requested but the dataset has no labels; fidelity is reported instead"
            )
        return None, None
    name = metric or acc.default_metric(data.labels)
    return name, (acc.score(name, outputs[0], data.labels), acc.score(name, outputs[1], data.labels))
