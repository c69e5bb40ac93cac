"""Scoring a model on the held-out split: top-1 and cross-entropy with labels, else distance to the
original's outputs; and which of two scores is better."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.techniques.train.loss import as_classes, distillation_mse, outputs_of

if TYPE_CHECKING:
    from engine.bridge import OnnxModule
    from engine.techniques.train.data import Samples

EVAL_BATCH = 256


def score(student: OnnxModule, teacher: OnnxModule, held_out: Samples) -> dict[str, float]:
    """The student's held-out figures (in eval mode, without gradients)."""
    import torch
    import torch.nn.functional as F

    training = student.training
    student.eval()
    correct = positions = 0
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(held_out), EVAL_BATCH):
                index = torch.arange(start, min(start + EVAL_BATCH, len(held_out)))
                batch = held_out.take(index)
                result = student(*batch.inputs)
                if batch.labels is None:
                    total += float(distillation_mse(result, teacher(*batch.inputs))) * len(index)
                    continue
                flat, labels, _ = as_classes(outputs_of(result)[0], batch.labels)
                total += float(F.cross_entropy(flat, labels, reduction="sum"))
                correct += int((flat.argmax(-1) == labels).sum())
                positions += len(labels)
    finally:
        student.train(training)
    if held_out.labels is None:
        return {"distillation_mse": round(total / len(held_out), 6)}
    return {"top1": round(correct / positions, 6), "loss": round(total / positions, 6)}


def rank(figures: dict[str, Any]) -> tuple[float, ...]:
    """A sort key: larger is better (top-1 first, then lower loss; or lower distance)."""
    if "top1" in figures:
        return (figures["top1"], -figures["loss"])
    return (-figures["distillation_mse"],)
