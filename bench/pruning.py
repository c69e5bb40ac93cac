"""`python -m bench.pruning`: prune the reference CNN every way, measure each result, write PRUNING.md."""

from __future__ import annotations

import argparse
import os
import re
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.machine import machine
from bench.pruning_goals import goal_lines
from bench.pruning_recipes import Recipe, recipes
from bench.pruning_report import PruneRow, render
from bench.pruning_setup import PruningReference, build_reference
from bench.torch_pruning_recipe import Budget

HERE = Path(__file__).resolve().parent
BATCH_SIZES = [1, 8]
WARMUP_RUNS = 10
MIN_RUNS = 30


def signature(model_path: Path) -> dict[str, Any]:
    """The model's input signature in the shape compare_models expects."""
    from engine.techniques.quantize.int8.calibration import model_inputs

    inputs = model_inputs(model_path)
    return {
        "inputs": [
            {"name": i.name, "dtype": i.dtype.name, "shape": None if i.dims is None else list(i.dims)}
            for i in inputs
        ]
    }


def compare(baseline: Path, candidate: Path, test_npz: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The comparison a job's evaluation would produce, on this machine."""
    from engine.evaluate import compare_models

    return compare_models(
        str(baseline),
        str(candidate),
        signature=signature(baseline),
        dataset_path=str(test_npz),
        metric="top1",
        batch_sizes=BATCH_SIZES,
        threads=args.threads,
        time_budget_s=args.budget,
        warmup_runs=WARMUP_RUNS,
        min_runs=MIN_RUNS,
        max_accuracy_drop=None,
    )


def measure(
    reference: PruningReference, recipe: Recipe, outputs: dict[str, Path], args: argparse.Namespace
) -> PruneRow:
    """Apply one recipe to the original (or to the recipe it chains on) and compare with the original."""
    source = reference.onnx_path if recipe.source is None else outputs.get(recipe.source)
    if source is None:
        return PruneRow(recipe.name, recipe.who, None, error=f"'{recipe.source}' produced no model")
    output = args.workdir / (re.sub(r"[^a-z0-9]+", "-", recipe.name.lower()).strip("-") + ".onnx")
    started = time.perf_counter()
    try:
        warnings = recipe.apply(source, output)
        seconds = time.perf_counter() - started
        comparison = compare(reference.onnx_path, output, reference.test_npz, args)
    except Exception as exc:  # one broken recipe must not hide the others' figures
        return PruneRow(recipe.name, recipe.who, None, error=f"{type(exc).__name__}: {exc}"[:300])
    outputs[recipe.name] = output
    return PruneRow(recipe.name, recipe.who, comparison, seconds, warnings)


def main(argv: list[str] | None = None) -> int:
    """Train the reference, run every pruning recipe, compare ModelPress with the hand recipe, report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--budget", type=float, default=1.5, help="seconds of timed runs per batch size")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="fine-tuning learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="fine-tuning batch size")
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "pruning")
    parser.add_argument("--out", type=Path, default=HERE / "PRUNING.md")
    args = parser.parse_args(argv)

    started, host = time.perf_counter(), machine()
    host["versions"]["torch-pruning"] = metadata.version("torch-pruning")

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {text}", flush=True)

    say("training the reference CNN")
    reference = build_reference(args.workdir)
    budget = Budget(args.epochs, args.learning_rate, args.batch_size)
    outputs: dict[str, Path] = {}
    rows = []
    for recipe in recipes(reference, budget):
        rows.append(measure(reference, recipe, outputs, args))
        say(recipe.name if rows[-1].comparison else f"{recipe.name} FAILED: {rows[-1].error}")
    ours, hand = (
        outputs.get(name)
        for name in ("prune.structured 50% + fine-tuning", "Torch-Pruning 50% (L1) + fine-tuning")
    )
    # ModelPress against the hand recipe head to head: one interleaved pair, not two separate ones.
    head_to_head = compare(hand, ours, reference.test_npz, args) if ours and hand else None
    say("ModelPress against Torch-Pruning, head to head")
    settings = {
        "threads": args.threads,
        "budget_s": args.budget,
        "warmup_runs": WARMUP_RUNS,
        "budget": budget,
        "load_end": os.getloadavg()[0],
        "total_s": time.perf_counter() - started,
    }
    facts = {
        "what": reference.what,
        "train_s": reference.train_seconds,
        "torch_accuracy": reference.torch_accuracy,
    }
    goals = goal_lines(rows, head_to_head)
    args.out.write_text(render(host=host, settings=settings, reference=facts, goals=goals, rows=rows) + "\n")
    print("\n".join(goals))
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
