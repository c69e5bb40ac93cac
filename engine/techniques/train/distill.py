"""distill: train a student on a teacher's outputs (and named features), then export it to ONNX.

The loss of a batch is the response distillation of every output (response.py), mixed by
`distillation` with cross-entropy on the labels when the dataset has them, plus the weighted
feature terms (features.py). Training is the shared loop (finetune.py): warm-up and cosine
learning rate, held-out split, best epoch kept, early stopping, progress per epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.contract import StepContext, StepOutcome, TechniqueError
from service.catalog.distill import DistillParams
from service.errors import DatasetMismatch

if TYPE_CHECKING:
    import torch

    from engine.bridge import OnnxModule
    from engine.techniques.train.data import Samples
    from engine.techniques.train.features import FeatureMatch
    from engine.techniques.train.finetune import Objective
    from engine.techniques.train.response import OutputLoss

PROBE_SAMPLES = 2


def objective(
    teacher: OnnxModule,
    losses: list[OutputLoss],
    matches: list[FeatureMatch],
    adapters: torch.nn.ModuleDict,
    params: DistillParams,
) -> Objective:
    """A batch's loss: (1 - w) task + w response distillation, plus the feature terms."""
    import torch
    import torch.nn.functional as F

    from engine.techniques.train.features import feature_loss
    from engine.techniques.train.loss import as_classes
    from engine.techniques.train.response import response_loss

    def loss(student: OnnxModule, batch: Samples) -> torch.Tensor:
        values = student.run(batch.inputs)
        with torch.no_grad():
            targets = teacher.run(batch.inputs)
        mine = tuple(values[spec.name] for spec in student.outputs)
        theirs = tuple(targets[spec.name] for spec in teacher.outputs)
        total = response_loss(losses, mine, theirs, params.temperature)
        if batch.labels is not None:
            flat, labels, _ = as_classes(mine[0], batch.labels)
            weight = params.distillation
            total = (1 - weight) * F.cross_entropy(flat, labels) + weight * total
        return total + feature_loss(matches, adapters, values, targets)

    return loss


def _name(losses: list[OutputLoss], labelled: bool, features: int) -> str:
    kinds = "+".join(dict.fromkeys(loss.kind for loss in losses if loss.kind != "skip"))
    name = f"cross_entropy+distillation_{kinds}" if labelled else f"distillation_{kinds}"
    return name + ("+features" if features else "")


def run(model_path: Path, output_path: Path, params: DistillParams, ctx: StepContext) -> StepOutcome:
    """Load teacher and student, check them, distil, export the student with the teacher's interface."""
    import onnx
    import torch

    from engine.bridge import from_onnx, to_onnx
    from engine.techniques.prune.structured import count_parameters
    from engine.techniques.train import features, response, student
    from engine.techniques.train.data import load_dataset, split
    from engine.techniques.train.finetune import finetune, lowered_batch
    from engine.techniques.train.validation import score

    torch.set_num_threads(max(1, ctx.threads))
    torch.manual_seed(params.seed)
    warnings: list[str] = []
    teacher_file = student.teacher_path(model_path, params, ctx)
    teacher = from_onnx(teacher_file).eval()
    ctx.progress(0.02, "preparing the student")
    pupil, made = student.student_module(model_path, teacher, params, ctx, warnings)
    data = ctx.dataset(params.dataset_id)
    samples = load_dataset(data, teacher)
    probe = samples.take(torch.arange(min(PROBE_SAMPLES, len(samples)))).inputs
    student.check_compatible(teacher, pupil, probe)
    losses = response.plan(teacher, params.response_loss, samples.labels is not None)
    if samples.labels is None and all(loss.kind == "skip" for loss in losses):
        raise TechniqueError(DatasetMismatch, "without labels, distillation needs a float output to match")
    matches, adapters = features.prepare(teacher, pupil, params.features, probe)
    name = _name(losses, samples.labels is not None, len(matches))
    trained_on = objective(teacher, losses, matches, adapters, params)
    report = finetune(
        pupil,
        teacher,
        data,
        params,
        ctx.progress,
        span=(0.1, 0.9),
        custom=(name, trained_on, adapters.parameters()),
    )
    held_out = split(samples, params.validation_fraction, params.seed)[1]
    if held_out is not None:
        report["teacher"] = score(teacher, teacher, held_out)
        report["after"] = score(pupil, teacher, held_out, trained_on)
    if samples.labels is None:
        warnings.append("no labels in the dataset: the student learned the teacher's outputs alone")
    warnings += lowered_batch(report)
    ctx.progress(0.95, "exporting to ONNX")
    to_onnx(pupil, output_path)
    exported = onnx.load(str(output_path))
    student.rename_outputs(exported, [spec.name for spec in teacher.outputs])
    onnx.save(exported, str(output_path))
    metrics: dict[str, Any] = {
        **made,
        "distill": report,
        "losses": [loss.kind for loss in losses],
        "temperature": params.temperature,
        "adapters": sorted(adapters.keys()),
        "parameters_teacher": count_parameters(onnx.load(str(teacher_file))),
        "parameters_after": count_parameters(exported),
    }
    return StepOutcome(metrics=metrics, warnings=warnings)
