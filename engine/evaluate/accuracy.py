"""Task metrics of a model's first output against dataset labels."""

from __future__ import annotations

import numpy as np

from engine.contract import TechniqueError
from service.errors import DatasetMismatch, InvalidParams

HIGHER_IS_BETTER = {"top1": True, "top5": True, "mse": False, "mae": False, "cosine": True}
BUDGET_TOLERANCE = 1e-9
# One-sided 95%: a drop's upper bound is the measured drop plus this many standard errors.
CONFIDENCE_Z = 1.645


def default_metric(labels: np.ndarray) -> str:
    """top1 for integer class labels, mse for float targets."""
    return "top1" if labels.dtype.kind in "iub" else "mse"


def check_metric(metric: str) -> str:
    """The metric name when it is known, else a user-facing error."""
    if metric not in HIGHER_IS_BETTER:
        raise TechniqueError(
            InvalidParams, f"unknown metric {metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}"
        )
    return metric


def score(metric: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    """top-k over the last axis for classifiers; mean squared or absolute error or cosine for the rest."""
    return float(np.mean(per_sample(metric, outputs, labels)))


def per_sample(metric: str, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each sample's part of the score (the score is their mean): hits, squared or absolute errors, cosine."""
    if metric in ("top1", "top5"):
        return _top_k_hits(outputs, labels, 1 if metric == "top1" else 5)
    if labels.size != outputs.size:
        raise TechniqueError(
            DatasetMismatch, f"labels have shape {labels.shape}; the model's output has {outputs.shape}"
        )
    targets = labels.astype(np.float64).reshape(outputs.shape)
    if metric == "cosine":
        return _cosines(outputs, targets)
    error = outputs - targets
    if error.ndim == 0 or error.size == 0:
        # A scalar output is one sample; no samples give no parts (their mean is NaN, as before).
        return np.reshape(error**2 if metric == "mse" else np.abs(error), -1).astype(np.float64)
    error = error.reshape(len(error), -1)
    return np.mean(error**2 if metric == "mse" else np.abs(error), axis=1)


def paired_drop(metric: str, baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """The candidate's drop from per-sample scores of both on the same samples, and its standard error.

    The error is that of the per-sample differences: a candidate that flips many answers both ways
    has an uncertain drop even when the flips cancel.
    """
    differences = baseline - candidate if HIGHER_IS_BETTER[metric] else candidate - baseline
    differences = differences.astype(np.float64).reshape(-1)
    if differences.size < 2:
        return (float(np.mean(differences)) if differences.size else 0.0), 0.0
    return float(np.mean(differences)), float(np.std(differences, ddof=1)) / np.sqrt(differences.size)


def drop_upper_bound(metric: str, baseline: np.ndarray, candidate: np.ndarray) -> float:
    """The drop plus CONFIDENCE_Z paired standard errors: how large the loss may be beyond sampling luck."""
    drop, error = paired_drop(metric, baseline, candidate)
    if metric in ("top1", "top5") and baseline.size >= 2:
        # Never surer than one flipped answer in n allows: no flip among 100 samples does not make a
        # 1-point budget certain.
        error = max(error, 1.0 / baseline.size)
    return drop + CONFIDENCE_Z * error


def _cosines(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each sample's cosine between its output and its target, both flattened."""
    a = outputs.reshape(len(outputs), -1).astype(np.float64)
    b = targets.reshape(len(targets), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    # Two identical outputs agree perfectly even when both are zero; one zero output has no direction.
    return np.where(norms > 0, np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0), same.astype(float))


def accuracy_drop(metric: str, baseline: float, candidate: float) -> float:
    """How much worse the candidate is: a positive number is a loss, a negative one a gain."""
    return baseline - candidate if HIGHER_IS_BETTER[metric] else candidate - baseline


def within_budget(drop: float, max_drop: float) -> bool:
    """True when the drop is at most the budget, up to floating-point rounding of the scores."""
    # 0.95 - 0.94 is 0.010000000000000009 in binary floating point and is still a 1-point drop.
    return drop <= max_drop + BUDGET_TOLERANCE


def _top_k_hits(outputs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """1.0 where a sample's label is among its k best scores (a sample's positions averaged), else 0.0."""
    if labels.dtype.kind not in "iub":
        raise TechniqueError(DatasetMismatch, f"top-k needs integer class labels, not {labels.dtype}")
    if outputs.ndim < 2 or outputs.shape[:-1] != labels.shape:
        raise TechniqueError(
            DatasetMismatch,
            f"labels of shape {labels.shape} do not match class scores of shape {outputs.shape}",
        )
    classes = outputs.shape[-1]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        # Out-of-range labels would simply never match: a silent score of 0, not an answer.
        raise TechniqueError(
            DatasetMismatch,
            f"labels range from {int(labels.min())} to {int(labels.max())}, but the model scores"
            f" {classes} classes (labels 0 to {classes - 1})",
        )
    if k == 1:
        hits = np.argmax(outputs, axis=-1) == labels
    else:
        k = min(k, outputs.shape[-1])
        best = np.argpartition(-outputs, k - 1, axis=-1)[..., :k]
        hits = np.any(best == labels[..., None], axis=-1)
    # A sequence labeller's positions count within their sample: the samples are what is independent.
    if hits.ndim > 1 and hits.size:
        return hits.reshape(len(hits), -1).mean(axis=1)
    return np.reshape(hits, -1).astype(np.float64) if hits.ndim <= 1 else np.zeros(0)
