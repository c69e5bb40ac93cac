"""Feature distillation: named intermediate tensors of the student learn the teacher's (MSE).

Where widths differ, a learned adapter maps the student's tensor to the teacher's width: a 1x1
convolution over the channel axis of image-like tensors (N, C, ...), a linear map over the last
axis otherwise. Adapters train with the student and are not part of it, so export drops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.contract import TechniqueError
from service.errors import IncompatibleStudent
from service.failures import UnknownTensor

if TYPE_CHECKING:
    import torch

    from engine.bridge import OnnxModule
    from service.catalog.distill import FeaturePair

# Tensors of this rank or more carry channels on dim 1 (N, C, H, W): adapted by a 1x1 convolution.
CHANNELS_FIRST_RANK = 4


@dataclass(frozen=True)
class FeatureMatch:
    """One pair to match: the tensor names, its weight, and its adapter's key (None: same width)."""

    teacher: str
    student: str
    weight: float
    adapter: str | None


def tensor_names(module: OnnxModule) -> set[str]:
    """Every tensor a module computes or takes."""
    names = {spec.name for spec in module.inputs}
    for step in module.steps:
        names.update(name for name in step.outputs if name)
    return names


def _check_names(role: str, module: OnnxModule, wanted: list[str]) -> None:
    known = tensor_names(module)
    unknown = sorted(set(wanted) - known)
    if unknown:
        sample = ", ".join(sorted(known)[:12])
        detail = (
            f"features: the {role} has no tensor named {', '.join(unknown)} (it has, among others: {sample})"
        )
        raise TechniqueError(UnknownTensor, detail, role=role, unknown=unknown)


def _width_axis(shape: tuple[int, ...]) -> int:
    return 1 if len(shape) >= CHANNELS_FIRST_RANK else len(shape) - 1


def _adapter(
    student_shape: tuple[int, ...], teacher_shape: tuple[int, ...], pair: FeaturePair
) -> torch.nn.Module:
    """A learned map from the student's width to the teacher's (other dims must already agree)."""
    import torch

    axis = _width_axis(teacher_shape)
    others_match = len(student_shape) == len(teacher_shape) and all(
        a == b
        for i, (a, b) in enumerate(zip(student_shape, teacher_shape, strict=True))
        if i not in (0, axis)
    )
    if not others_match:
        detail = (
            f"features: student tensor '{pair.student}' has shape {student_shape} and teacher tensor "
            f"'{pair.teacher}' has {teacher_shape}: only their widths (dim {axis}) may differ"
        )
        raise TechniqueError(IncompatibleStudent, detail)
    wide_in, wide_out = student_shape[axis], teacher_shape[axis]
    if axis == 1 and len(teacher_shape) >= CHANNELS_FIRST_RANK:
        conv = {4: torch.nn.Conv2d, 5: torch.nn.Conv3d}.get(len(teacher_shape), torch.nn.Conv2d)
        return conv(wide_in, wide_out, kernel_size=1)
    return torch.nn.Linear(wide_in, wide_out)


def prepare(
    teacher: OnnxModule, student: OnnxModule, pairs: list[FeaturePair], probe: list[torch.Tensor]
) -> tuple[list[FeatureMatch], torch.nn.ModuleDict]:
    """The pairs checked against both models (names, shapes on `probe`) and the adapters they need."""
    import torch

    _check_names("teacher", teacher, [pair.teacher for pair in pairs])
    _check_names("student", student, [pair.student for pair in pairs])
    with torch.no_grad():
        teacher_values, student_values = teacher.run(probe), student.run(probe)
    adapters, matches = torch.nn.ModuleDict(), []
    for index, pair in enumerate(pairs):
        t_shape = tuple(teacher_values[pair.teacher].shape)
        s_shape = tuple(student_values[pair.student].shape)
        key = None
        if t_shape != s_shape:
            key = f"pair{index}"
            adapters[key] = _adapter(s_shape, t_shape, pair)
        matches.append(FeatureMatch(pair.teacher, pair.student, pair.weight, key))
    return matches, adapters


def feature_loss(
    matches: list[FeatureMatch],
    adapters: torch.nn.ModuleDict,
    student_values: dict[str, torch.Tensor],
    teacher_values: dict[str, torch.Tensor],
) -> torch.Tensor | float:
    """The weighted MSE of every pair, the student's side through its adapter."""
    import torch.nn.functional as F

    total: torch.Tensor | float = 0.0
    for match in matches:
        mine = student_values[match.student]
        if match.adapter is not None:
            # A linear adapter maps the last axis, a 1x1 convolution the channel axis.
            mine = adapters[match.adapter](mine)
        total = total + match.weight * F.mse_loss(mine, teacher_values[match.teacher])
    return total
