"""The teacher and the student of a distillation step, and the check that one can stand in for the other.

The teacher is an uploaded model or the job's own. The student is an uploaded model, one derived
from the teacher by prune.structured's channel removal, or the step's input (the previous step's
artifact). It must take the teacher's inputs and give outputs of the same count and shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import JOB_MODEL, StepContext, TechniqueError
from service.errors import IncompatibleStudent, InvalidParams

if TYPE_CHECKING:
    import onnx
    import torch

    from engine.bridge import OnnxModule
    from service.catalog.distill import DistillParams


def teacher_path(model_path: Path, params: DistillParams, ctx: StepContext) -> Path:
    """The teacher's file: the uploaded one, else the job's model (the step's input when none is given)."""
    if params.teacher_model_id is not None:
        return ctx.model(params.teacher_model_id)
    return ctx.models.get(JOB_MODEL, model_path)


def student_module(
    model_path: Path, teacher: OnnxModule, params: DistillParams, ctx: StepContext, warnings: list[str]
) -> tuple[OnnxModule, dict[str, Any]]:
    """The student to train and what was done to make it."""
    from engine.bridge import from_onnx

    if params.student_model_id is not None:
        return from_onnx(ctx.model(params.student_model_id)), {"student": "uploaded"}
    if params.student is not None:
        return _derived(teacher, params, ctx, warnings)
    if teacher_path(model_path, params, ctx) == model_path:
        detail = (
            "the step's model would be both teacher and student: name `student_model_id`, derive one with "
            '`student: {"sparsity": 0.5}`, or run distill after a step that makes the student'
        )
        raise TechniqueError(InvalidParams, detail)
    return from_onnx(model_path), {"student": "previous_step"}


def _derived(
    teacher: OnnxModule, params: DistillParams, ctx: StepContext, warnings: list[str]
) -> tuple[OnnxModule, dict[str, Any]]:
    """The teacher with channels removed exactly as prune.structured removes them (l1 ranking)."""
    from engine.techniques.prune.structured_stages import prune_and_recover
    from service.catalog.prune import StructuredPruneParams

    assert params.student is not None
    pruning = StructuredPruneParams(
        sparsity=params.student.sparsity, round_to=params.student.round_to, importance="l1"
    )
    module, metrics = prune_and_recover(teacher, pruning, ctx, warnings)
    return module, {"student": "derived", "channels": metrics["channels"], "sparsity": pruning.sparsity}


def check_compatible(teacher: OnnxModule, student: OnnxModule, probe: list[torch.Tensor]) -> None:
    """IncompatibleStudent unless the student takes the teacher's inputs and gives outputs of its shapes."""
    import torch

    from engine.techniques.train.loss import outputs_of

    wanted = [spec.name for spec in teacher.inputs]
    got = [spec.name for spec in student.inputs]
    if wanted != got:
        raise TechniqueError(
            IncompatibleStudent, f"the student takes inputs {got}; the teacher takes {wanted}"
        )
    if len(student.outputs) != len(teacher.outputs):
        detail = f"the student has {len(student.outputs)} outputs; the teacher has {len(teacher.outputs)}"
        raise TechniqueError(IncompatibleStudent, detail)
    try:
        with torch.no_grad():
            mine, theirs = outputs_of(student(*probe)), outputs_of(teacher(*probe))
    except (RuntimeError, ValueError, IndexError) as error:
        detail = f"the student does not run on the dataset's inputs: {str(error)[:200]}"
        raise TechniqueError(IncompatibleStudent, detail) from None
    for position, (s, t) in enumerate(zip(mine, theirs, strict=True)):
        if s.shape != t.shape:
            detail = (
                f"the student's output {position} has shape {tuple(s.shape)}; the teacher's {tuple(t.shape)}"
            )
            raise TechniqueError(IncompatibleStudent, detail)


def rename_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Give the exported student's outputs the teacher's names, so it replaces the teacher as is."""
    renames = {
        value.name: name for value, name in zip(model.graph.output, names, strict=True) if value.name != name
    }
    if not renames:
        return
    for node in model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
        node.input[:] = [renames.get(name, name) for name in node.input]
    for value in model.graph.output:
        value.name = renames.get(value.name, value.name)
