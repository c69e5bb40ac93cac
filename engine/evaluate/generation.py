"""Decoder speed: time to first token (prefill) and greedy decode tokens/s with the KV cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from engine.evaluate.benchmark import keep_timing, percentiles
from engine.evaluate.decoder_feeds import split_outputs, step_feeds
from engine.evaluate.sessions import run_checked


@dataclass
class GenerationTiming:
    """Per round: prefill milliseconds and decode seconds of one model at one batch size."""

    prefill_ms: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)

    def summary(self, batch: int, new_tokens: int) -> dict[str, Any]:
        """Time to first token percentiles, median decode tokens/s (all sequences) and ms per step."""
        steps = max(new_tokens - 1, 1)
        decode = np.array(self.decode_s)
        return {
            "time_to_first_token_ms": percentiles(np.array(self.prefill_ms)),
            "decode_tokens_per_s": float(np.median(batch * steps / decode)),
            "decode_ms_per_token": float(np.median(decode) * 1000.0 / steps),
            "rounds": len(self.prefill_ms),
        }


def generate(
    session: ort.InferenceSession,
    layout: Mapping[str, Any],
    prompt: np.ndarray,
    new_tokens: int,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float, np.ndarray]:
    """Greedy generation: (prefill seconds, seconds for the remaining tokens, generated ids).

    The first token comes from the prefill; each later one is one pass over the newest token with
    the cache (or over the whole sequence when the model has no cache outputs).
    """
    names = [meta.name for meta in session.get_outputs()]
    batch = len(prompt)
    mask = np.ones(prompt.shape, dtype=np.int64)
    start = clock()
    logits, cache = split_outputs(layout, names, run_checked(session, step_feeds(layout, prompt, mask)))
    prefill = clock() - start
    tokens = [np.argmax(logits[:, -1], axis=-1)]
    sequence = np.concatenate([prompt, tokens[-1][:, None]], axis=1)
    start = clock()
    for _ in range(new_tokens - 1):
        mask = np.ones((batch, sequence.shape[1]), dtype=np.int64)
        if layout["past_inputs"]:
            feeds = step_feeds(layout, sequence[:, -1:], mask, cache)
        else:
            feeds = step_feeds(layout, sequence, mask)
        logits, cache = split_outputs(layout, names, run_checked(session, feeds))
        tokens.append(np.argmax(logits[:, -1], axis=-1))
        sequence = np.concatenate([sequence, tokens[-1][:, None]], axis=1)
    return prefill, clock() - start, np.stack(tokens, axis=1)


def time_generation(
    sessions: list[ort.InferenceSession],
    layout: Mapping[str, Any],
    prompt: np.ndarray,
    new_tokens: int,
    *,
    warmup_runs: int,
    budget_s: float,
) -> tuple[list[GenerationTiming], float]:
    """Both models generate from the same prompt, interleaved (who goes first flips each round).

    Returns each model's timings and the share of generated tokens on which they agree.
    """
    for _ in range(warmup_runs):
        for session in sessions:
            generate(session, layout, prompt, new_tokens)
    timings = [GenerationTiming(), GenerationTiming()]
    agreement = 1.0
    started = time.perf_counter()
    while keep_timing(len(timings[0].prefill_ms), time.perf_counter() - started, budget_s):
        order = (0, 1) if len(timings[0].prefill_ms) % 2 == 0 else (1, 0)
        produced: dict[int, np.ndarray] = {}
        for which in order:
            prefill, decode, produced[which] = generate(sessions[which], layout, prompt, new_tokens)
            timings[which].prefill_ms.append(prefill * 1000.0)
            timings[which].decode_s.append(decode)
        agreement = float(np.mean(produced[0] == produced[1]))
    return timings, agreement
