"""`python -m bench.coverage.run`: every technique over every zoo model through the service."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.coverage.cells import cell
from bench.coverage.models import BUILDERS
from bench.coverage.profile import op_time_shares
from bench.coverage.report import render
from bench.coverage.service import running_service
from bench.machine import machine

HERE = Path(__file__).resolve().parents[1]
WORK = HERE / "work"
TECHNIQUES = [
    "quantize.dynamic", "quantize.static", "quantize.fp16", "quantize.auto",
    "prune.magnitude", "prune.nm", "prune.structured",
    "quantize.weight_only", "quantize.qat", "distill", "export.torch", "optimize",
]  # fmt: skip
# Each technique's parameters: its defaults plus what it requires, the model's sample inputs as the
# dataset. distill is given a student derived by halving the channels (its default student is the
# job's model itself, which would only retrain it); optimize gets the cpu-latency preset and a
# shorter budget than its 600 s default so a full run stays within an hour.
PARAMS: dict[str, Callable[[str], dict[str, Any]]] = {
    "quantize.static": lambda dataset: {"dataset_id": dataset},
    "quantize.auto": lambda dataset: {"dataset_id": dataset},
    "quantize.qat": lambda dataset: {"training": {"dataset_id": dataset}},
    "distill": lambda dataset: {"dataset_id": dataset, "student": {"sparsity": 0.5}},
    "optimize": lambda dataset: {"dataset_id": dataset, "preset": "cpu-latency", "time_budget_s": 180},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--techniques", nargs="*", default=TECHNIQUES, choices=TECHNIQUES)
    parser.add_argument("--bench-budget-s", type=float, default=0.5, help="timing budget per batch size")
    parser.add_argument("--job-timeout-s", type=float, default=900)
    parser.add_argument("--output", type=Path, default=HERE / "coverage.json")
    parser.add_argument("--report-only", action="store_true", help="profile and render the stored results")
    args = parser.parse_args()
    # A terminated run still stops the server it started (the context manager's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    results.setdefault("models", {})
    if args.report_only:
        _finish(results, args.output, measured=False)
        return
    started = time.monotonic()
    _note_partial(results, args.models, args.techniques)
    with running_service(WORK / f"serve-{int(time.time())}", args.bench_budget_s) as service:
        for name in args.models:
            built = BUILDERS[name](WORK)
            model = service.upload("models", built.onnx_path)
            entry = results["models"].setdefault(name, {})
            entry.update(family=built.family, source=built.source, ingest=_ingest(model))
            entry.setdefault("cells", {})
            if model["status"] != "ready":
                continue
            dataset = service.upload("datasets", built.dataset_path)["id"]
            for technique in args.techniques:
                params = PARAMS[technique](dataset) if technique in PARAMS else {}
                body = {
                    "model_id": model["id"],
                    "steps": [{"technique": technique, "params": params}],
                    "evaluation": {"dataset_id": dataset, "batch_sizes": [1, 8]},
                }
                entry["cells"][technique] = cell(service.run_job(body, args.job_timeout_s))
                print(name, technique, json.dumps(entry["cells"][technique])[:300], flush=True)
                _save(args.output, results)
    results["wall_s"] = round(time.monotonic() - started, 1)
    _finish(results, args.output)


def _finish(results: dict[str, Any], output: Path, *, measured: bool = True) -> None:
    """Add each model's operator-time profile and the machine that measured, save, write COVERAGE.md."""
    for name, entry in results["models"].items():
        if "profile" not in entry:
            built = BUILDERS[name](WORK)
            with np.load(built.dataset_path) as data:
                entry["profile"] = op_time_shares(built.onnx_path, dict(data))
    if measured or not results.get("machine"):
        results["machine"] = machine()
    _save(output, results)
    (HERE / "COVERAGE.md").write_text(render(results))


def _note_partial(results: dict[str, Any], models: list[str], techniques: list[str]) -> None:
    """Record what this run re-measures; cells it leaves alone keep the earlier run's machine line."""
    partial = set(models) != set(BUILDERS) or set(techniques) != set(TECHNIQUES)
    if partial and results.get("machine"):
        results["earlier_machine"] = results["machine"]
        results["earlier_wall_s"] = results.get("wall_s")
    elif not partial:
        results.pop("earlier_machine", None)
        results.pop("earlier_wall_s", None)
    results["last_run"] = {"models": sorted(models), "techniques": sorted(techniques), "partial": partial}


def _ingest(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": model["status"],
        "normalization": model.get("normalization"),
        "error": model.get("error"),
        "opset": model.get("opset"),
        "parameters": model.get("parameters"),
    }


def _save(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
