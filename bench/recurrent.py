"""`python -m bench.recurrent`: LSTM/GRU dynamic int8 and export.torch via the service; writes RECURRENT.md.

Everything goes through a real `modelpress serve` (API + worker) as a user's jobs would: upload, job,
comparison. Models are trained here on scikit-learn's digits (each image's 8 rows as 8 time steps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import load_servers
from bench.machine import machine

HERE = Path(__file__).resolve().parent
BATCH_SIZES = [1, 8, 64]
HIDDEN = 128


class Client:
    """One tenant's session with the service."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def upload(self, kind: str, path: Path) -> str:
        with path.open("rb") as handle:
            response = self.http.post(f"/v1/{kind}", files={"file": (path.name, handle)})
        response.raise_for_status()
        return str(response.json()["id"])

    def wait(self, path: str, final: set[str], timeout_s: float = 1200) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            body: dict[str, Any] = self.http.get(path).json()
            if body["status"] in final or time.monotonic() > deadline:
                return body
            time.sleep(1)

    def job(self, model_id: str, step: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
        submitted = self.http.post(
            "/v1/jobs", json={"model_id": model_id, "steps": [step], "evaluation": evaluation}
        )
        submitted.raise_for_status()
        return self.wait(f"/v1/jobs/{submitted.json()['id']}", {"succeeded", "failed", "cancelled"})


def build(folder: Path) -> dict[str, Any]:
    """Train the LSTM and GRU classifiers and the digits MLP; write the ONNX files and datasets."""
    from tests import model_zoo
    from tests.worker.recurrent_models import dead_feature_inputs, write_lstm

    built: dict[str, Any] = {"accuracy": {}}
    for kind in ("lstm", "gru"):
        started = time.monotonic()
        model = model_zoo.trained(partial(model_zoo.DigitsRecurrent, kind, HIDDEN), epochs=40)
        built["accuracy"][kind] = (model_zoo.accuracy(model), time.monotonic() - started)
        built[kind] = model_zoo.export_onnx(model, folder / f"{kind}.onnx")
    mlp = model_zoo.trained(model_zoo.DigitsMLP)
    built["accuracy"]["mlp"] = (model_zoo.accuracy(mlp), 0.0)
    built["mlp"] = model_zoo.export_onnx(mlp, folder / "mlp.onnx")
    built["digits"] = model_zoo.write_dataset(folder / "digits.npz")
    built["dead"] = write_lstm(folder / "dead.onnx", dead_feature_weight=40.0)
    np.savez(folder / "dead.npz", x=dead_feature_inputs(256))
    built["dead_inputs"] = folder / "dead.npz"
    return built


def run_jobs(client: Client, built: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every job of the bench, with the label its row gets."""
    ids = {name: client.upload("models", built[name]) for name in ("lstm", "gru", "mlp", "dead")}
    for model_id in ids.values():
        client.wait(f"/v1/models/{model_id}", {"ready", "rejected"})
    digits = client.upload("datasets", built["digits"])
    dead = client.upload("datasets", built["dead_inputs"])
    labelled = {"dataset_id": digits, "metric": "top1", "max_accuracy_drop": 0.01, "batch_sizes": BATCH_SIZES}
    unlabelled = {"dataset_id": dead, "batch_sizes": BATCH_SIZES}
    quantize = {"technique": "quantize.dynamic"}
    keep_lstm = {"technique": "quantize.dynamic", "params": {"op_types": ["MatMul", "Gemm"]}}
    plan = [
        ("LSTM classifier, quantize.dynamic", ids["lstm"], quantize, labelled),
        ("GRU classifier, quantize.dynamic", ids["gru"], quantize, labelled),
        ("LSTM with a dead input, quantize.dynamic", ids["dead"], quantize, unlabelled),
        ("LSTM with a dead input, LSTM kept float", ids["dead"], keep_lstm, unlabelled),
    ]
    exports = {"batch_sizes": BATCH_SIZES, "timing_budget_s": 3.0}
    for name in ("mlp", "lstm"):
        for weights in ("fp32", "int8"):
            step = {"technique": "export.torch", "params": {**exports, "weights": weights}}
            plan.append((f"{name.upper()} export.torch {weights}", ids[name], step, labelled))
    results = []
    for label, model_id, step, evaluation in plan:
        print(f"{label} ...", flush=True)
        results.append((label, client.job(model_id, step, evaluation)))
    return results


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def quantize_rows(results: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """One row per quantize.dynamic job: accuracy, fidelity, size and speedup at each batch size."""
    head = "| job | top-1 fp32 | top-1 int8 | cosine | size | " + " | ".join(
        f"speedup b{b}" for b in BATCH_SIZES
    )
    lines = [head + " |", "|" + " --- |" * (5 + len(BATCH_SIZES))]
    for label, job in results:
        if job["steps"][0]["technique"] != "quantize.dynamic":
            continue
        if job["status"] != "succeeded":
            lines.append(f"| {label} | failed: {job['error']['detail']} |")
            continue
        comparison = job["comparison"]
        delta = comparison["delta"]
        before = comparison["baseline"]["accuracy"].get("top1")
        after = comparison["candidate"]["accuracy"].get("top1")
        speed = [_times(delta["speedup"].get(str(b))) for b in BATCH_SIZES]
        cells = [label, _fmt(before, 4), _fmt(after, 4), _fmt(delta["fidelity"]["cosine"], 4)]
        lines.append("| " + " | ".join([*cells, f"{delta['size_ratio']:.2f}x", *speed]) + " |")
    return lines


def export_rows(results: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """One row per export.torch job and batch size: p50 of fp32 torch, the program and onnxruntime."""
    lines = [
        "| job | batch | torch fp32 p50 ms | program p50 ms | onnxruntime p50 ms | program vs torch fp32"
        " | max abs error vs torch fp32 |",
        "|" + " --- |" * 7,
    ]
    for label, job in results:
        if job["steps"][0]["technique"] != "export.torch":
            continue
        if job["status"] != "succeeded":
            lines.append(f"| {label} | failed: {job['error']['detail']} |")
            continue
        metrics = job["steps"][0]["metrics"]
        error = metrics["fidelity_vs_torch_fp32"]["max_abs_error"]
        for batch, runs in metrics["latency_ms"].items():
            speedup = metrics["speedup_vs_torch_fp32"][batch]
            p50 = [_fmt(runs[name]["p50"], 3) for name in ("torch_fp32", "program", "onnxruntime")]
            lines.append(f"| {label} | {batch} | " + " | ".join(p50) + f" | {speedup:.2f}x | {error:.2g} |")
    return lines


def verdicts(results: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Every job's verdict warnings, as the service returned them."""
    lines = []
    for label, job in results:
        verdict = (job.get("comparison") or {}).get("verdict") or {}
        lines.append(f"- **{label}**: faster={verdict.get('faster')}, smaller={verdict.get('smaller')}")
        lines += [f"  - {warning}" for warning in verdict.get("warnings", [])]
    return lines


def render(built: dict[str, Any], results: list[tuple[str, dict[str, Any]]], info: dict[str, Any]) -> str:
    """The results file."""
    isa = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in info["isa"].items())
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    accuracy = ", ".join(f"{name} {value:.4f}" for name, (value, _) in built["accuracy"].items())
    return "\n".join(
        [
            "# ModelPress recurrent-model and torch-export benchmark",
            "",
            f"Written by `python -m bench.recurrent` on {info['date']} in {info['seconds']:.0f} s;"
            " re-run it to refresh.",
            "",
            "## Machine",
            "",
            f"- CPU: {info['cpu']}, {info['cores']} cores available",
            f"- ISA: {isa}",
            f"- Python {info['python']}; {versions}",
            "- onnxruntime CPUExecutionProvider and torch, 1 thread each (the service's bench_threads)",
            f"- load average at start {info['load']:.2f}, at end {info['load_end']:.2f}",
            "",
            "## Method",
            "",
            "Every figure comes from a job of a real `modelpress serve` (API + Celery worker, embedded"
            " mode), as a user's request would run. Models are trained here on scikit-learn's digits"
            f" (1437 train / 360 test): the recurrent ones read each image's 8 rows as 8 time steps of 8"
            f" pixels through an LSTM or GRU ({HIDDEN} hidden units, 40 epochs) and classify the last state;"
            f" torch top-1: {accuracy}. The dead-input LSTM (tests/worker/recurrent_models.py) has an input"
            " feature that is always zero but weighted 40 in every gate, which costs nothing in float and"
            " sets every int8 row scale, as an outlier channel does in real models.",
            "",
            "quantize.dynamic rows are the job's comparison: original and int8 model interleaved on"
            " onnxruntime after warm-up, speedup = original p50 / int8 p50. export.torch rows are the"
            " step's own timing: the bridge's fp32 torch module (baseline), the exported program (.pt2)"
            " and the ONNX model on onnxruntime (reference), interleaved in rotating order.",
            "",
            "## quantize.dynamic on recurrent models",
            "",
            *quantize_rows(results),
            "",
            "## export.torch",
            "",
            *export_rows(results),
            "",
            "## Verdicts as returned by the service",
            "",
            *verdicts(results),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=HERE / "RECURRENT.md")
    args = parser.parse_args(argv)
    started, info = time.monotonic(), machine()
    info["versions"]["torchao"] = metadata.version("torchao")
    info["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="modelpress-recurrent-") as scratch:
        folder = Path(scratch)
        built = build(folder)
        (folder / "home").mkdir()
        with load_servers.embedded(folder / "home", MODELPRESS_BENCH_TIME_BUDGET_S="3") as (url, key):
            results = run_jobs(Client(url, key), built)
    info["seconds"], info["load_end"] = time.monotonic() - started, machine()["load"]
    args.output.write_text(render(built, results, info))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
