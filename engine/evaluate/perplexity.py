"""Perplexity of a decoder on token ids: the exponential of the mean shifted next-token loss."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from engine.evaluate.decoder_feeds import step_feeds
from engine.evaluate.sessions import run_checked

CHUNK = 4
# Logits kept per sequence for fidelity: every vocabulary row is large, so only a sample of positions.
FIDELITY_POSITIONS = 8


@dataclass(frozen=True)
class LanguageScore:
    """Perplexity over the dataset, and sampled next-token logits for fidelity (positions, vocab)."""

    perplexity: float
    tokens: int
    logits: np.ndarray


def score_tokens(
    session: ort.InferenceSession,
    layout: Mapping[str, Any],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
) -> LanguageScore:
    """Token i+1 is scored from the logits at position i wherever both tokens are attended."""
    names = [meta.name for meta in session.get_outputs()]
    total_loss, counted, kept = 0.0, 0, []
    for start in range(0, len(input_ids), CHUNK):
        ids, mask = input_ids[start : start + CHUNK], attention_mask[start : start + CHUNK]
        outputs = run_checked(session, step_feeds(layout, ids, mask))
        logits = np.asarray(outputs[names.index("logits")])
        for row in range(len(ids)):
            loss, count = _row_loss(logits[row], ids[row], mask[row])
            total_loss, counted = total_loss + loss, counted + count
            kept.append(_sampled(logits[row], mask[row]))
    perplexity = float(np.exp(total_loss / counted)) if counted else float("nan")
    return LanguageScore(perplexity, counted, np.concatenate(kept))


def _row_loss(logits: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Summed negative log-likelihood of one sequence's next tokens, and how many were scored."""
    scored = (mask[:-1] > 0) & (mask[1:] > 0)
    if not scored.any():
        return 0.0, 0
    rows = logits[:-1][scored].astype(np.float64)
    targets = ids[1:][scored]
    peak = rows.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
    return float(np.sum(log_norm - rows[np.arange(len(rows)), targets])), int(scored.sum())


def _sampled(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Logits at evenly spaced attended positions (always including the last)."""
    attended = np.flatnonzero(mask > 0)
    if not len(attended):
        return logits[:0].astype(np.float32)
    picks = attended[np.linspace(0, len(attended) - 1, min(FIDELITY_POSITIONS, len(attended))).astype(int)]
    return logits[picks].astype(np.float32)
