"""Perplexity of SmolLM2-135M int4/int8 variants: rtn (block, symmetry, compute, lm_head kept float)
against gptq (the project's own, calibrated on 8 corpus windows).

`nice -n 10 python -m bench.weight_only_sensitivity`: writes bench/WEIGHT_ONLY_VARIANTS.md (one row
per variant, perplexity on the first 8 eval windows, and the seconds each quantization took).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bench import smollm2
from bench.machine import machine
from bench.weight_only import CALIBRATION_SEQUENCES, SEQUENCE, corpus_tokens
from engine.contract import StepContext
from engine.evaluate.perplexity import score_tokens
from engine.evaluate.sessions import make_session
from engine.ingest.summary import summarize
from engine.techniques.quantize import weight_only
from service.catalog.quantize_weight_only import WeightOnlyParams

WORK = Path(__file__).resolve().parent / "work" / "weight_only"
RESULTS = Path(__file__).resolve().parent / "WEIGHT_ONLY_VARIANTS.md"
GPTQ = {"algorithm": "gptq", "dataset_id": "calibration", "calibration_samples": CALIBRATION_SEQUENCES}
VARIANTS: dict[str, dict[str, Any]] = {
    "rtn int4 b128 sym, accuracy_level 4 (the default)": {},
    "rtn int4 b128 sym, accuracy_level 0": {"accuracy_level": 0},
    "rtn int4 b32 asym, accuracy_level 4": {"block_size": 32, "symmetric": False},
    "rtn int4 b128 sym, lm_head float": {"nodes_to_exclude": ["/model/lm_head/MatMul"]},
    "rtn int8 b128 sym": {"bits": 8},
    "gptq int4 b128 sym": GPTQ,
    "gptq int4 b128 asym": {**GPTQ, "symmetric": False},
    "gptq int4 b32 asym": {**GPTQ, "block_size": 32, "symmetric": False},
}


def main() -> None:
    """Quantize each variant with the service's technique and score it on the first 8 eval windows."""
    WORK.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    model = smollm2.onnx_model()
    signature = summarize(onnx.load(str(model)), "onnx")["signature"]
    layout = signature["decoder"]
    tokens = corpus_tokens(smollm2.tokenizer())
    np.savez(WORK / "calibration.npz", input_ids=tokens[-CALIBRATION_SEQUENCES:])
    ids = tokens[:8]
    mask = np.ones_like(ids)
    base = score_tokens(make_session(model, 2), layout, ids, mask)
    print(f"fp32: perplexity {base.perplexity:.3f}", flush=True)
    rows = []
    for name, params in VARIANTS.items():
        output, started = WORK / "variant.onnx", time.perf_counter()
        ctx = StepContext(
            workdir=WORK, signature=signature, datasets={"calibration": WORK / "calibration.npz"}
        )
        weight_only.run(model, output, WeightOnlyParams(**{"algorithm": "rtn", **params}), ctx)
        seconds = time.perf_counter() - started
        score = score_tokens(make_session(output, 2), layout, ids, mask)
        increase = score.perplexity / base.perplexity - 1
        rows.append((name, score.perplexity, increase, seconds))
        print(f"{name}: perplexity {score.perplexity:.3f} ({increase:+.1%}), {seconds:.0f} s", flush=True)
        output.unlink()
    _write(started_at, base.perplexity, rows)


def _write(started_at: str, base: float, rows: list[tuple[str, float, float, float]]) -> None:
    host = machine()
    lines = [
        "# SmolLM2-135M weight-only variants: perplexity",
        "",
        f"Run of `python -m bench.weight_only_sensitivity` at {started_at} on {host['cpu']}, "
        f"{host['cores']} cores (load {host['load']:.1f}); "
        + ", ".join(f"{name} {version}" for name, version in host["versions"].items())
        + ".",
        "",
        f"fp32 export (the GGUF's Q4_1 weights dequantized): perplexity {base:.3f} on the first 8 windows of"
        f" {SEQUENCE} corpus tokens (pydoc_data topics); gptq calibrates on the last {CALIBRATION_SEQUENCES}"
        " windows, never scored.",
        "",
        "| variant | perplexity | increase | seconds to quantize |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {name} | {value:.3f} | {increase:+.1%} | {seconds:.0f} |"
            for name, value, increase, seconds in rows
        ],
        "",
    ]
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
