"""Side-by-side comparison of two decoders: perplexity, time to first token, decode tokens/s."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engine.contract import TechniqueError
from engine.evaluate.benchmark import percentiles, size_and_speed_ratios, throughput
from engine.evaluate.decoder_feeds import step_feeds
from engine.evaluate.describe import describe_loaded, op_histogram
from engine.evaluate.environment import environment
from engine.evaluate.fidelity import fidelity
from engine.evaluate.generation import time_generation
from engine.evaluate.memory import peak_memory_bytes
from engine.evaluate.perplexity import score_tokens
from engine.evaluate.precision import precision_kind
from engine.evaluate.sessions import make_session
from engine.evaluate.verdict import judge
from service.errors import DatasetMismatch, InvalidDataset, InvalidParams

GENERATED_SEQUENCES, GENERATED_LENGTH = 8, 64
MAX_SEQUENCES = 256
SEED = 0


def compare_decoders(
    paths: tuple[Path, Path],
    layout: Mapping[str, Any],
    *,
    dataset_path: str | None,
    metric: str | None,
    batch_sizes: list[int],
    prompt_length: int,
    new_tokens: int,
    threads: int,
    time_budget_s: float,
    warmup_runs: int,
    max_accuracy_drop: float | None,
) -> dict[str, Any]:
    """The comparison for a language model: accuracy is perplexity, speed is generation speed.

    `accuracy_drop` is the relative perplexity increase (0.05 = 5% higher). Timing runs greedy
    generation of `new_tokens` after a prompt of `prompt_length` tokens, both models interleaved.
    """
    if metric not in (None, "perplexity"):
        raise TechniqueError(InvalidParams, f"a language model is scored by perplexity, not {metric!r}")
    models = [onnx.load(str(path)) for path in paths]
    sides = [describe_loaded(model, path) for model, path in zip(models, paths, strict=True)]
    sessions = [make_session(path, threads) for path in paths]
    ids, mask, from_dataset = _tokens(layout, dataset_path, sessions[0])
    scores = [score_tokens(session, layout, ids, mask) for session in sessions]
    notes: list[str] = []
    if not from_dataset:
        notes.append(
            "no dataset of token ids was given: fidelity is measured on random tokens, perplexity not at all"
        )
    prompt_rows = ids[:, :prompt_length]
    if prompt_rows.shape[1] < prompt_length:
        notes.append(f"the dataset's sequences hold {prompt_rows.shape[1]} tokens, so prompts are that long")
    generation: dict[str, list[dict[str, Any]]] = {}
    agreement: dict[str, float] = {}
    for batch in dict.fromkeys(batch_sizes):
        prompt = prompt_rows[np.arange(batch) % len(prompt_rows)]
        timings, agreement[str(batch)] = time_generation(
            sessions, layout, prompt, new_tokens, warmup_runs=warmup_runs, budget_s=time_budget_s
        )
        generation[str(batch)] = [timing.summary(batch, new_tokens) for timing in timings]
        for which, timing in enumerate(timings):
            sides[which].setdefault("latency_ms", {})[str(batch)] = percentiles(np.array(timing.prefill_ms))
            sides[which].setdefault("throughput_per_s", {})[str(batch)] = throughput(
                np.array(timing.prefill_ms), batch
            )
    largest = max(batch_sizes)
    memory_feeds = step_feeds(
        layout,
        prompt_rows[np.arange(largest) % len(prompt_rows)],
        np.ones((largest, prompt_rows.shape[1]), np.int64),
    )
    for which, side in enumerate(sides):
        side["generation"] = {batch: figures[which] for batch, figures in generation.items()}
        side["accuracy"] = {"perplexity": scores[which].perplexity} if from_dataset else {}
        side["peak_memory_bytes"] = peak_memory_bytes(paths[which], memory_feeds, threads)
    baseline, candidate = sides
    drop = (scores[1].perplexity - scores[0].perplexity) / scores[0].perplexity if from_dataset else None
    decode_speedup = {
        batch: figures[1]["decode_tokens_per_s"] / figures[0]["decode_tokens_per_s"]
        for batch, figures in generation.items()
    }
    delta = {
        **size_and_speed_ratios(baseline, candidate, generation),
        "decode_speedup": decode_speedup,
        "accuracy_drop": drop,
        "perplexity_increase": drop,
        "fidelity": {**fidelity(scores[0].logits, scores[1].logits), "greedy_token_agreement": agreement},
    }
    candidate_ops = op_histogram(models[1])
    verdict = judge(
        size_ratio=delta["size_ratio"],
        # A language model's users wait on decoding: speed is judged on tokens/s with the cache.
        speedup={f"{batch} (decode tokens/s)": value for batch, value in decode_speedup.items()},
        accuracy_drop=drop,
        max_accuracy_drop=max_accuracy_drop,
        metric="perplexity" if from_dataset else None,
        fidelity=delta["fidelity"],
        baseline_ops=op_histogram(models[0]),
        candidate_ops=candidate_ops,
        notes=notes,
        candidate_kind=precision_kind(models[1], candidate_ops),
        density=candidate["nonzero_parameters"] / max(candidate["parameters"], 1),
    )
    return {
        "baseline": baseline,
        "candidate": candidate,
        "delta": delta,
        "verdict": verdict,
        "node_errors": None,
        "decoder": {"prompt_length": int(prompt_rows.shape[1]), "new_tokens": new_tokens, "greedy": True},
        "environment": environment(threads),
    }


def _tokens(
    layout: Mapping[str, Any], dataset_path: str | None, session: Any
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(input_ids, attention_mask, from a dataset): the dataset's, or random ids in the vocabulary."""
    if dataset_path is None:
        vocab = layout.get("vocab_size") or _probe_vocab(layout, session)
        ids = np.random.default_rng(SEED).integers(0, vocab, (GENERATED_SEQUENCES, GENERATED_LENGTH))
        return ids.astype(np.int64), np.ones(ids.shape, np.int64), False
    try:
        with np.load(dataset_path, allow_pickle=False) as archive:
            arrays = {
                name: archive[name] for name in archive.files if name in ("input_ids", "attention_mask")
            }
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TechniqueError(InvalidDataset, "the evaluation dataset cannot be read as an .npz") from exc
    if "input_ids" not in arrays:
        raise TechniqueError(DatasetMismatch, "a language model's dataset needs an 'input_ids' array")
    ids = arrays["input_ids"]
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] < 2:
        raise TechniqueError(
            DatasetMismatch,
            "input_ids must be integer token ids shaped (sequences, length >= 2),"
            f" not {ids.dtype} {list(ids.shape)}",
        )
    mask = arrays.get("attention_mask", np.ones(ids.shape, np.int64))
    if mask.shape != ids.shape:
        raise TechniqueError(
            DatasetMismatch, f"attention_mask has shape {list(mask.shape)}; input_ids has {list(ids.shape)}"
        )
    vocab = layout.get("vocab_size")
    if vocab and ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise TechniqueError(
            DatasetMismatch,
            f"token ids range from {int(ids.min())} to {int(ids.max())}; the vocabulary has {vocab}",
        )
    return ids[:MAX_SEQUENCES].astype(np.int64), mask[:MAX_SEQUENCES].astype(np.int64), True


def _probe_vocab(layout: Mapping[str, Any], session: Any) -> int:
    """The vocabulary size from one pass over a single token, when the signature leaves it symbolic."""
    names = [meta.name for meta in session.get_outputs()]
    one = np.zeros((1, 1), np.int64)
    logits = session.run(None, step_feeds(layout, one, np.ones((1, 1), np.int64)))[names.index("logits")]
    return int(logits.shape[-1])
