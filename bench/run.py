"""`python -m bench.run`: train the reference models, compress each with every recipe, write RESULTS.md."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.findings import findings
from bench.goals import goal_lines
from bench.headtohead import Duel, duel
from bench.machine import machine
from bench.models import REFERENCES, BuiltModel, build
from bench.outliers import OUTLIERS, with_outliers
from bench.pairs import FP32, ablation_pairs, contenders, goal_candidates
from bench.recipes import Job, Recipe, recipes
from bench.report import ModelResult, Row, render

HERE = Path(__file__).resolve().parent
BATCH_SIZES = [1, 8]
WARMUP_RUNS = 10
MIN_RUNS = 30
# The verdict's accuracy bar in each comparison: the bar for the convolutional model.
GOAL_MAX_DROP = 0.005


def signature(model_path: Path) -> dict[str, Any]:
    """The model's input signature in the shape compare_models expects."""
    from engine.techniques.quantize.int8.calibration import model_inputs

    return {
        "inputs": [
            {"name": i.name, "dtype": i.dtype.name, "shape": None if i.dims is None else list(i.dims)}
            for i in model_inputs(model_path)
        ]
    }


def measure(built: BuiltModel, recipe: Recipe, args: argparse.Namespace) -> Row:
    """Apply one recipe and compare its candidate with the fp32 model; a failure becomes a row too."""
    from engine.evaluate import compare_models

    slug = re.sub(r"[^a-z0-9]+", "-", recipe.name.lower()).strip("-")
    output = built.onnx_path.parent / f"{slug}.onnx"
    # A fresh scratch folder per recipe, as a worker gives each step: nothing left from an earlier run.
    workdir = built.onnx_path.parent / "steps" / slug
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        warnings = recipe.apply(
            Job(built.onnx_path, output, built.calibration_npz, built.validation_npz, workdir)
        )
        comparison = compare_models(
            str(built.onnx_path),
            str(output),
            signature=signature(built.onnx_path),
            dataset_path=str(built.test_npz),
            metric="top1",
            batch_sizes=BATCH_SIZES,
            threads=args.threads,
            time_budget_s=args.budget,
            warmup_runs=WARMUP_RUNS,
            min_runs=MIN_RUNS,
            max_accuracy_drop=GOAL_MAX_DROP,
        )
    except Exception as exc:  # one broken recipe must not hide the others' figures
        return Row(
            recipe.name, recipe.who, None, error=f"{type(exc).__name__}: {exc}", ablation=recipe.ablation
        )
    return Row(recipe.name, recipe.who, comparison, warnings, candidate=output, ablation=recipe.ablation)


def head_to_head(built: BuiltModel, rows: list[Row], threads: int) -> list[Duel]:
    """Time the hand and ModelPress candidates that the goals compare directly against each other."""
    pairs = [
        (first.recipe, first.candidate, second) for first, second in contenders(rows) + ablation_pairs(rows)
    ]
    pairs += [(FP32, built.onnx_path, ours) for ours in goal_candidates(built.reference.name, rows)]
    return [
        duel((name, ours.recipe), path, ours.candidate, built.test_npz, BATCH_SIZES, threads)
        for name, path, ours in pairs
        if path and ours.candidate
    ]


def build_all(names: list[str], workdir: Path, log: Callable[[str], None]) -> Iterator[BuiltModel]:
    """Train each requested reference model (and derive the outlier variant from the encoder)."""
    built: dict[str, BuiltModel] = {}
    for reference in REFERENCES:
        if reference.name in names or (reference.name == OUTLIERS.base and OUTLIERS.reference.name in names):
            log(f"training {reference.name}")
            built[reference.name] = build(reference, workdir / reference.name)
        if reference.name in names:
            yield built[reference.name]
    if OUTLIERS.reference.name in names:
        base = built[OUTLIERS.base]
        yield with_outliers(base, OUTLIERS.reference, workdir / OUTLIERS.reference.name)


def main(argv: list[str] | None = None) -> int:
    """Run every reference model through every recipe and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    # One intra-op thread by default: on a shared two-core machine a second thread waits on whichever
    # core another process holds, and an idle session's spinning pool slows the session being timed.
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--budget", type=float, default=1.5, help="seconds of timed runs per batch size")
    parser.add_argument(
        "--models", nargs="*", default=[*(r.name for r in REFERENCES), OUTLIERS.reference.name]
    )
    parser.add_argument("--workdir", type=Path, default=HERE / "work")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)

    started, host = time.perf_counter(), machine()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    results = []
    for built in build_all(args.models, args.workdir, log):
        name = built.reference.name
        rows = []
        for recipe in (r for r in recipes() if r.applies_to(name)):
            rows.append(measure(built, recipe, args))
            log(f"  {name}: {recipe.name}")
        duels = head_to_head(built, rows, args.threads)
        log(f"  {name}: {len(duels)} head-to-head comparisons")
        results.append(
            ModelResult(
                name,
                built.reference.what,
                built.torch_accuracy,
                built.train_seconds,
                rows,
                duels,
                built.onnx_path,
            )
        )
    settings = {
        "threads": args.threads,
        "budget_s": args.budget,
        "warmup_runs": WARMUP_RUNS,
        "load_end": os.getloadavg()[0],
    }
    goals = goal_lines(results)
    args.out.write_text(render(results, host, settings, goals, findings(results)) + "\n")
    print("\n".join(line for line in goals if "met**" in line))
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
