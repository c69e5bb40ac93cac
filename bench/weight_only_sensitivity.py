"""Perplexity of SmolLM2-135M int4/int8 rtn variants (block, symmetry, compute, lm_head kept float).

Run after bench.weight_only (it reuses its eval.npz and the cached export):
`nice -n 10 python -m bench.weight_only_sensitivity`; prints one line per variant, perplexity only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bench import smollm2
from engine.contract import StepContext
from engine.evaluate.perplexity import score_tokens
from engine.evaluate.sessions import make_session
from engine.ingest.summary import summarize
from engine.techniques.quantize import weight_only
from service.catalog.quantize_weight_only import WeightOnlyParams

WORK = Path(__file__).resolve().parent / "work" / "weight_only"
VARIANTS: dict[str, dict[str, Any]] = {
    "int4 b128 sym, accuracy_level 0": {"accuracy_level": 0},
    "int4 b32 asym, accuracy_level 0": {"block_size": 32, "symmetric": False, "accuracy_level": 0},
    "int4 b32 asym, accuracy_level 4": {"block_size": 32, "symmetric": False},
    "int4 b128 sym, lm_head float": {"nodes_to_exclude": ["/model/lm_head/MatMul"]},
    "int8 b128 sym": {"bits": 8},
}


def main() -> None:
    """Quantize each variant with the service's technique and score it on the first 8 eval windows."""
    model = smollm2.onnx_model()
    signature = summarize(onnx.load(str(model)), "onnx")["signature"]
    layout = signature["decoder"]
    ids = np.load(WORK / "eval.npz")["input_ids"][:8]
    mask = np.ones_like(ids)
    base = score_tokens(make_session(model, 2), layout, ids, mask)
    print(f"fp32: perplexity {base.perplexity:.3f}", flush=True)
    for name, params in VARIANTS.items():
        output, started = WORK / "variant.onnx", time.perf_counter()
        ctx = StepContext(workdir=WORK, signature=signature)
        weight_only.run(model, output, WeightOnlyParams(algorithm="rtn", **params), ctx)
        score = score_tokens(make_session(output, 2), layout, ids, mask)
        increase = score.perplexity / base.perplexity - 1
        seconds = time.perf_counter() - started
        print(f"{name}: perplexity {score.perplexity:.3f} ({increase:+.1%}), {seconds:.0f} s", flush=True)
        output.unlink()


if __name__ == "__main__":
    main()
