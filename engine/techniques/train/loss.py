"""The fine-tuning objective: cross-entropy on labels mixed with distillation, else distillation alone.

With labels the first output is trained as logits with cross-entropy, mixed (by `distillation`)
with knowledge distillation from the original model's softened class scores: the original knows
more than the labels (how alike the classes look). Without labels the model learns to reproduce
the original model's outputs (mean squared error over every float output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.contract import TechniqueError
from service.errors import DatasetMismatch

if TYPE_CHECKING:
    import torch

    from engine.bridge import OnnxModule


def outputs_of(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A module's result as a tuple of outputs."""
    import torch

    return (result,) if isinstance(result, torch.Tensor) else result


def _classes_last(logits: torch.Tensor, classes_on_dim_1: bool) -> torch.Tensor:
    """Scores as (positions, classes): classes moved last from dim 1 (N, C, H, W) where they are there."""
    if classes_on_dim_1:
        logits = logits.movedim(1, -1)
    return logits.flatten(0, -2) if logits.dim() > 2 else logits


def as_classes(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Scores as (positions, classes) and labels as (positions,); also whether classes were on dim 1."""
    shape, label_shape = tuple(logits.shape), tuple(labels.shape)
    # Classes on dim 1 where only that fits, or where both fit on images (N, C, H, W): segmentation.
    on_dim_1, on_last = label_shape == shape[:1] + shape[2:], label_shape == shape[:-1]
    classes_on_dim_1 = on_dim_1 and (not on_last or logits.dim() >= 4)
    flat, labels = _classes_last(logits, classes_on_dim_1), labels.flatten()
    if labels.numel() != flat.shape[0] or int(labels.max()) >= flat.shape[-1] or int(labels.min()) < 0:
        detail = (
            f"labels of shape {label_shape} do not match the first output "
            f"(shape {shape}) as class indices: give one label per sample, or per position with the "
            "classes on the output's last dim or on dim 1 (as segmentation models do)"
        )
        raise TechniqueError(DatasetMismatch, detail)
    return flat, labels, classes_on_dim_1


def class_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    batch: list[torch.Tensor],
    teacher: OnnxModule,
    weight: float,
    temperature: float,
) -> Any:
    """Cross-entropy on the labels, mixed with distillation from the teacher's softened logits."""
    import torch
    import torch.nn.functional as F

    flat, labels, classes_on_dim_1 = as_classes(logits, labels)
    loss = F.cross_entropy(flat, labels)
    if weight == 0:
        return loss
    with torch.no_grad():
        targets = _classes_last(outputs_of(teacher(*batch))[0], classes_on_dim_1).reshape(flat.shape)
    soft = F.kl_div(
        F.log_softmax(flat / temperature, -1),
        F.log_softmax(targets / temperature, -1),
        reduction="batchmean",
        log_target=True,
    )
    # T^2 keeps the soft term's gradients on the scale of the hard one's (Hinton et al., 2015).
    return (1 - weight) * loss + weight * temperature**2 * soft


def distillation_mse(student_out: Any, teacher_out: Any) -> Any:
    """Mean squared error summed over every float output: the objective without labels."""
    import torch.nn.functional as F

    pairs = [
        (s, t)
        for s, t in zip(outputs_of(student_out), outputs_of(teacher_out), strict=True)
        if s.dtype.is_floating_point
    ]
    if not pairs:
        raise TechniqueError(DatasetMismatch, "without labels, fine-tuning needs a float output to distil")
    return sum(F.mse_loss(s, t) for s, t in pairs)


def loss(
    student_out: Any,
    batch: list[torch.Tensor],
    labels: torch.Tensor | None,
    teacher: OnnxModule,
    distillation: float,
    temperature: float,
) -> Any:
    """The training objective of one batch."""
    import torch

    if labels is not None:
        return class_loss(outputs_of(student_out)[0], labels, batch, teacher, distillation, temperature)
    with torch.no_grad():
        targets = teacher(*batch)
    return distillation_mse(student_out, targets)
