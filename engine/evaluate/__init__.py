"""Evaluation of a compressed model against its original: size, speed, memory, accuracy, fidelity."""

from __future__ import annotations

from engine.evaluate.compare import compare_models
from engine.evaluate.describe import describe_model

__all__ = ["compare_models", "describe_model"]
