"""Task metrics of a model's first output against dataset labels."""

from __future__ import annotations

import numpy as np

from engine.contract import TechniqueError
from service.errors import DatasetMismatch, InvalidParams

HIGHER_IS_BETTER = {"top1": True, "top5": True, "mse": False, "mae": False, "cosine": True}
BUDGET_TOLERANCE = 1e-9


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
    if metric in ("top1", "top5"):
        return _top_k(outputs, labels, 1 if metric == "top1" else 5)
    if labels.size != outputs.size:
        raise TechniqueError(
            DatasetMismatch, f"labels have shape {labels.shape}; the model's output has {outputs.shape}"
        )
    targets = labels.astype(np.float64).reshape(outputs.shape)
    if metric == "cosine":
        return _mean_cosine(outputs, targets)
    error = outputs - targets
    return float(np.mean(error**2) if metric == "mse" else np.mean(np.abs(error)))


def _mean_cosine(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over samples of the cosine between each output and its target, both flattened."""
    a = outputs.reshape(len(outputs), -1).astype(np.float64)
    b = targets.reshape(len(targets), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    # Two identical outputs agree perfectly even when both are zero; one zero output has no direction.
    cosine = np.where(norms > 0, np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0), same.astype(float))
    return float(np.mean(cosine))


def accuracy_drop(metric: str, baseline: float, candidate: float) -> float:
    """How much worse the candidate is: a positive number is a loss, a negative one a gain."""
    return baseline - candidate if HIGHER_IS_BETTER[metric] else candidate - baseline


def within_budget(drop: float, max_drop: float) -> bool:
    """True when the drop is at most the budget, up to floating-point rounding of the scores."""
    # 0.95 - 0.94 is 0.010000000000000009 in binary floating point and is still a 1-point drop.
    return drop <= max_drop + BUDGET_TOLERANCE


def _top_k(outputs: np.ndarray, labels: np.ndarray, k: int) -> float:
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
        return float(np.mean(np.argmax(outputs, axis=-1) == labels))
    k = min(k, outputs.shape[-1])
    best = np.argpartition(-outputs, k - 1, axis=-1)[..., :k]
    return float(np.mean(np.any(best == labels[..., None], axis=-1)))
