"""How closely the candidate's outputs follow the original's, sample by sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def fidelity(baseline: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Mean per-sample cosine, top-1 agreement (outputs shaped (samples, classes)), max abs error."""
    if baseline.shape != candidate.shape:
        return {"cosine": None, "top1_agreement": None, "max_abs_error": None}
    # A scalar output (one score per run) is one sample of one value.
    rows = len(baseline) if baseline.ndim else 1
    a = baseline.reshape(rows, -1).astype(np.float64)
    b = candidate.reshape(rows, -1).astype(np.float64)
    return {
        "cosine": _mean_cosine(a, b),
        "top1_agreement": _top1_agreement(baseline, candidate),
        "max_abs_error": float(np.max(np.abs(a - b))) if a.size else 0.0,
    }


def fidelity_per_output(
    names: Sequence[str], baseline: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Fidelity of every output the two models share, by the original's output name."""
    return {
        name: fidelity(a, b)
        for name, a, b in zip(names, baseline, candidate, strict=False)
        if a.size and b.size
    }


def worst_output(per_output: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The fidelity of the output with the lowest cosine, with its name; None when none was measured."""
    measured = [(name, figures) for name, figures in per_output.items() if figures.get("cosine") is not None]
    if not measured:
        return None
    name, figures = min(measured, key=lambda item: item[1]["cosine"])
    return {**figures, "output": name}


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    # Two all-zero outputs agree perfectly; one all-zero output has no direction to agree with.
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))
    return float(np.mean(cosine))


def _top1_agreement(baseline: np.ndarray, candidate: np.ndarray) -> float | None:
    # Only (samples, classes) outputs have an unambiguous class axis; (N, C, H, W) maps do not.
    if baseline.ndim != 2 or baseline.shape[1] < 2:
        return None
    return float(np.mean(np.argmax(baseline, axis=1) == np.argmax(candidate, axis=1)))
