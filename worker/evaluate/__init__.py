"""Evaluation of a compressed model against its original: size, speed, memory, accuracy, fidelity."""

from __future__ import annotations

from worker.evaluate.compare import compare_models
from worker.evaluate.describe import describe_model

__all__ = ["compare_models", "describe_model"]
