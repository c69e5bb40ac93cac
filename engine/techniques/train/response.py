"""Response distillation: how each of the student's outputs learns the teacher's, chosen by its kind.

Class scores get KL(teacher || student) on temperature-softened distributions, scaled by T^2 so
its gradients stay on the scale of the task loss (Hinton et al., 2015); probabilities (an output
made by Softmax) are compared through their logarithms. Other float outputs (regression values,
embeddings) get mean squared error, or cosine distance when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from engine.bridge import OnnxModule

Kind = Literal["kl", "mse", "cosine", "skip"]
# Ops whose output is a distribution over the last axis: the output holds class scores.
DISTRIBUTIONS = {"Softmax": "probabilities", "LogSoftmax": "log_probabilities"}


@dataclass(frozen=True)
class OutputLoss:
    """The loss one output is distilled with, and what its values are (logits or (log-)probabilities)."""

    kind: Kind
    values: str = "logits"


def _producer(module: OnnxModule, name: str) -> str | None:
    return next((step.op for step in module.steps if name in step.outputs), None)


def plan(teacher: OnnxModule, requested: str, labelled: bool) -> list[OutputLoss]:
    """One loss per teacher output: `requested`, or by kind under `auto`; non-float outputs skipped."""
    from engine.bridge.dtypes import torch_dtype

    losses = []
    for position, spec in enumerate(teacher.outputs):
        if not torch_dtype(spec.elem_type).is_floating_point:
            losses.append(OutputLoss("skip"))
            continue
        values = DISTRIBUTIONS.get(_producer(teacher, spec.name) or "", "logits")
        if requested != "auto":
            losses.append(OutputLoss(requested, values))  # type: ignore[arg-type]
        elif values != "logits" or (labelled and position == 0):
            # With labels the first output is trained as class scores (the task loss reads it so).
            losses.append(OutputLoss("kl", values))
        else:
            losses.append(OutputLoss("mse", values))
    return losses


def _log_scores(x: torch.Tensor, values: str) -> torch.Tensor:
    """Unnormalized log-scores along the last axis: logits as they are, probabilities' logarithms."""
    if values == "probabilities":
        return x.clamp_min(1e-12).log()
    return x


def kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float, values: str) -> torch.Tensor:
    """KL(teacher || student) of the softened class distributions (last axis), times T^2."""
    import torch.nn.functional as F

    s = _log_scores(student, values).flatten(0, -2) if student.dim() > 1 else student[None]
    t = _log_scores(teacher, values).flatten(0, -2) if teacher.dim() > 1 else teacher[None]
    soft = F.kl_div(
        F.log_softmax(s / temperature, -1),
        F.log_softmax(t / temperature, -1),
        reduction="batchmean",
        log_target=True,
    )
    return soft * temperature**2


def one(loss: OutputLoss, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """The distillation loss of one output."""
    import torch.nn.functional as F

    if loss.kind == "kl":
        return kl(student, teacher, temperature, loss.values)
    if loss.kind == "cosine":
        s, t = student.flatten(1).float(), teacher.flatten(1).float()
        return (1 - F.cosine_similarity(s, t, dim=1)).mean()
    return F.mse_loss(student, teacher)


def response_loss(
    losses: list[OutputLoss],
    student: tuple[torch.Tensor, ...],
    teacher: tuple[torch.Tensor, ...],
    temperature: float,
) -> torch.Tensor:
    """The sum of every distilled output's loss."""
    terms = [
        one(loss, s, t, temperature)
        for loss, s, t in zip(losses, student, teacher, strict=True)
        if loss.kind != "skip"
    ]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
