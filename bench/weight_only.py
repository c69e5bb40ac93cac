"""Weight-only quantization bench: SmolLM2-135M int4 (rtn, hqq, gptq) and a MiniLM-class encoder int8.

Run with `nice -n 10 python -m bench.weight_only`; writes bench/WEIGHT_ONLY.md. Every candidate is made
by the service's own technique (engine.techniques.quantize.weight_only.run) and compared with the fp32
original by engine.evaluate.compare_models, as a job's evaluation does.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from bench import smollm2
from bench.machine import machine
from bench.weight_only_report import GOALS
from engine.contract import StepContext
from engine.evaluate import compare_models
from engine.ingest.summary import summarize
from engine.techniques.quantize import weight_only
from service.catalog.quantize_weight_only import WeightOnlyParams

WORK = Path(__file__).resolve().parent / "work" / "weight_only"
RESULTS = Path(__file__).resolve().parent / "WEIGHT_ONLY.md"
THREADS = 2
SEQUENCE, EVAL_SEQUENCES, CALIBRATION_SEQUENCES = 256, 16, 8
PROMPT, NEW_TOKENS = 32, 32
RECIPES: dict[str, dict[str, Any]] = {
    "int4 rtn": {"algorithm": "rtn"},
    "int4 rtn + embedding (Gather)": {"algorithm": "rtn", "op_types": ["MatMul", "Gather"]},
    "int4 hqq": {"algorithm": "hqq"},
    "int4 gptq": {
        "algorithm": "gptq",
        "dataset_id": "calibration",
        "calibration_samples": CALIBRATION_SEQUENCES,
    },
}


def corpus_tokens(tokenizer: Any) -> np.ndarray:
    """Python's bundled language-reference topics (pydoc_data), tokenized by the model's own tokenizer."""
    from tests.language_models import corpus_text

    ids = np.array(tokenizer(corpus_text())["input_ids"], dtype=np.int64)
    windows = len(ids) // SEQUENCE
    return ids[: windows * SEQUENCE].reshape(windows, SEQUENCE)


def quantize(
    model: Path, name: str, params: dict[str, Any], signature: dict[str, Any], datasets: dict[str, Path]
) -> tuple[Path, float, dict[str, Any]]:
    """Run the technique; returns the candidate, the seconds it took and its step metrics."""
    output = (
        WORK
        / f"{model.stem}-{name.replace(' ', '_').replace('+', '').replace('(', '').replace(')', '')}.onnx"
    )
    ctx = StepContext(workdir=WORK, datasets=datasets, signature=signature, threads=THREADS)
    started = time.perf_counter()
    outcome = weight_only.run(model, output, WeightOnlyParams(**params), ctx)
    return output, time.perf_counter() - started, outcome.metrics


def smollm2_rows(tokens: np.ndarray) -> list[dict[str, Any]]:
    """Each recipe on SmolLM2-135M, compared with the fp32 export."""
    model = smollm2.onnx_model()
    signature = summarize(onnx.load(str(model), load_external_data=True), "onnx")["signature"]
    assert signature.get("decoder"), "the export must be recognized as a decoder"
    np.savez(WORK / "eval.npz", input_ids=tokens[:EVAL_SEQUENCES])
    np.savez(WORK / "calibration.npz", input_ids=tokens[-CALIBRATION_SEQUENCES:])
    rows = []
    for name, params in RECIPES.items():
        candidate, seconds, metrics = quantize(
            model, name, params, signature, {"calibration": WORK / "calibration.npz"}
        )
        comparison = compare_models(
            str(model),
            str(candidate),
            signature=signature,
            dataset_path=str(WORK / "eval.npz"),
            metric="perplexity",
            batch_sizes=[1, 4],
            threads=THREADS,
            time_budget_s=6.0,
            warmup_runs=1,
            min_runs=3,
            max_accuracy_drop=GOALS["gptq_perplexity" if params["algorithm"] == "gptq" else "perplexity"],
            prompt_length=PROMPT,
            new_tokens=NEW_TOKENS,
        )
        rows.append({"recipe": name, "seconds": seconds, "metrics": metrics, "comparison": comparison})
        # A long run: keep every finished pair, so a later failure loses nothing measured.
        (WORK / "smollm2_rows.json").write_text(json.dumps(rows, default=str, indent=1))
        print(name, json.dumps(comparison["delta"], default=str)[:400], flush=True)
        candidate.unlink()
    return rows


class _HiddenStates(torch.nn.Module):
    """Tokens and mask in, last_hidden_state out: the positional call the TorchScript exporter makes."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def minilm_row(tokens: np.ndarray) -> dict[str, Any]:
    """A MiniLM-L6-shaped BERT encoder (random weights), int8 weight-only rtn, on the corpus's tokens."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=49152,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        attn_implementation="eager",
    )
    encoder = _HiddenStates(BertModel(config).eval())
    path = WORK / "minilm.onnx"
    ids, mask = torch.from_numpy(tokens[:2, :16]), torch.ones(2, 16, dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "last_hidden_state")
            },
        )
    signature = summarize(onnx.load(str(path)), "onnx")["signature"]
    np.savez(WORK / "minilm.npz", input_ids=tokens[:64, :128], attention_mask=np.ones((64, 128), np.int64))
    candidate, seconds, metrics = quantize(path, "int8 rtn", {"algorithm": "rtn", "bits": 8}, signature, {})
    comparison = compare_models(
        str(path),
        str(candidate),
        signature=signature,
        dataset_path=str(WORK / "minilm.npz"),
        metric=None,
        batch_sizes=[1, 8],
        threads=THREADS,
        time_budget_s=3.0,
        warmup_runs=3,
        min_runs=10,
        max_accuracy_drop=None,
    )
    return {"recipe": "int8 rtn (MatMul)", "seconds": seconds, "metrics": metrics, "comparison": comparison}


def main() -> None:
    """Run everything and write the results file."""
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    WORK.mkdir(parents=True, exist_ok=True)
    started, at = time.perf_counter(), datetime.now(UTC)
    host = machine()
    tokens = corpus_tokens(smollm2.tokenizer())
    if "--encoder-only" in sys.argv:
        encoder = minilm_row(tokens)
        (WORK / "minilm.json").write_text(json.dumps(encoder, default=str, indent=1))
        print(json.dumps(encoder["comparison"]["delta"], default=str))
        return
    rows = smollm2_rows(tokens)
    encoder = minilm_row(tokens)
    run = {
        "host": host,
        "at": at.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - started,
        "sequences": [int(n) for n in tokens.shape],
        "load_end": os.getloadavg()[0],
        "smollm2": rows,
        "minilm": encoder,
    }
    (WORK / "results.json").write_text(json.dumps(run, default=str, indent=1))
    from bench.weight_only_report import write_report

    write_report(RESULTS, run)


if __name__ == "__main__":
    main()
