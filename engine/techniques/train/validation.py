"""Scoring a model on the held-out split: top-1 and cross-entropy with labels, else distance to the
original's outputs (and the training objective's own loss, when it brings one); and which of two
scores is better."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.techniques.train.loss import as_classes, distillation_mse, outputs_of

if TYPE_CHECKING:
    import torch

    from engine.bridge import OnnxModule
    from engine.techniques.train.data import Samples

EVAL_BATCH = 256


def score(
    student: OnnxModule,
    teacher: OnnxModule,
    held_out: Samples,
    objective: Callable[[OnnxModule, Samples], torch.Tensor] | None = None,
) -> dict[str, float]:
    """The student's held-out figures (in eval mode, without gradients).

    Without labels, `objective` (the loss the student trains on) is scored too: a student trained on
    KL of class scores can match the teacher's classes ever better while its raw logits drift from
    the teacher's by a constant, which the distance alone would call worse.
    """
    import torch
    import torch.nn.functional as F

    training = student.training
    student.eval()
    correct = positions = 0
    total = trained_on = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(held_out), EVAL_BATCH):
                index = torch.arange(start, min(start + EVAL_BATCH, len(held_out)))
                batch = held_out.take(index)
                result = student(*batch.inputs)
                if batch.labels is None:
                    total += float(distillation_mse(result, teacher(*batch.inputs))) * len(index)
                    if objective is not None:
                        trained_on += float(objective(student, batch)) * len(index)
                    continue
                flat, labels, _ = as_classes(outputs_of(result)[0], batch.labels)
                total += float(F.cross_entropy(flat, labels, reduction="sum"))
                correct += int((flat.argmax(-1) == labels).sum())
                positions += len(labels)
    finally:
        student.train(training)
    if held_out.labels is None:
        figures = {"distillation_mse": round(total / len(held_out), 6)}
        if objective is not None:
            figures["distillation_loss"] = round(trained_on / len(held_out), 6)
        return figures
    return {"top1": round(correct / positions, 6), "loss": round(total / positions, 6)}


def rank(figures: dict[str, Any]) -> tuple[float, ...]:
    """A sort key, larger is better: top-1 then lower loss; else lower training loss, then distance."""
    if "top1" in figures:
        return (figures["top1"], -figures["loss"])
    if "distillation_loss" in figures:
        return (-figures["distillation_loss"], -figures["distillation_mse"])
    return (-figures["distillation_mse"],)
