"""The shared fine-tuning loop for bridged models: cross-entropy on labels, else distillation.

With a `labels` array in the dataset the first output is trained as logits with cross-entropy,
mixed (by `distillation`) with knowledge distillation from the original model's softened class
scores: the original knows more than the labels (how alike the classes look), and a pruned model
recovers faster and further when it learns that too. Without labels the model learns to reproduce
the original model's outputs (mean squared error over every float output), so no labels are needed
to recover what pruning took away.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.catalog.prune import FinetuneParams
from service.errors import DatasetMismatch, InvalidDataset
from worker.errortext import brief
from worker.sandbox.contract import TechniqueError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from worker.bridge import OnnxModule, TensorSpec

Progress = Callable[[float, str], None]
# Softening of the class scores for distillation: enough to expose how alike the classes look.
TEMPERATURE = 4.0


def _check(name: str, array: np.ndarray, spec: TensorSpec, dtype: torch.dtype) -> None:
    """Same kind of numbers and, where the model fixes a dim, the same size (samples along dim 0)."""
    if (array.dtype.kind == "f") != dtype.is_floating_point:
        detail = f"array '{name}' is {array.dtype} but the model expects {dtype}"
        raise TechniqueError(DatasetMismatch, detail)
    if spec.shape is None:
        return
    fixed = [(i, d) for i, d in enumerate(spec.shape) if isinstance(d, int) and i > 0]
    if array.ndim != len(spec.shape) or any(array.shape[i] != d for i, d in fixed):
        detail = f"array '{name}' has shape {array.shape} but model input '{name}' has shape {spec.shape}"
        raise TechniqueError(DatasetMismatch, detail)


def load_dataset(path: Path, module: OnnxModule) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The model's inputs (by name, in the module's dtypes) and the labels, if the .npz has them."""
    import zipfile

    import numpy as np
    import torch

    from worker.bridge.dtypes import torch_dtype

    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [spec.name for spec in module.inputs if spec.name not in arrays.files]
            if missing:
                detail = (
                    f"the dataset has no array named {', '.join(missing)} (it has {', '.join(arrays.files)})"
                )
                raise TechniqueError(DatasetMismatch, detail)
            inputs = []
            for spec in module.inputs:
                array, dtype = arrays[spec.name], torch_dtype(spec.elem_type)
                _check(spec.name, array, spec, dtype)
                inputs.append(torch.from_numpy(array).to(dtype))
            labels = torch.from_numpy(arrays["labels"]).long() if "labels" in arrays.files else None
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise TechniqueError(
            InvalidDataset, f"the dataset is not a readable .npz file: {brief(error)}"
        ) from error
    counts = {len(x) for x in inputs} | ({len(labels)} if labels is not None else set())
    if len(counts) != 1 or not inputs[0].shape[0]:
        raise TechniqueError(DatasetMismatch, "dataset arrays must be non-empty and share their first dim")
    return inputs, labels


def _outputs(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    import torch

    return (result,) if isinstance(result, torch.Tensor) else result


def _classes_last(logits: torch.Tensor, classes_on_dim_1: bool) -> torch.Tensor:
    """Scores as (positions, classes): classes moved last from dim 1 (N, C, H, W) where they are there."""
    if classes_on_dim_1:
        logits = logits.movedim(1, -1)
    return logits.flatten(0, -2) if logits.dim() > 2 else logits


def _class_loss(
    logits: torch.Tensor, labels: torch.Tensor, batch: list[torch.Tensor], teacher: OnnxModule, weight: float
) -> Any:
    """Cross-entropy on the labels, mixed with distillation from the teacher's softened logits."""
    import torch
    import torch.nn.functional as F

    shape, label_shape = tuple(logits.shape), tuple(labels.shape)
    # Classes on dim 1 where only that fits, or where both fit on images (N, C, H, W): segmentation.
    on_dim_1, on_last = label_shape == shape[:1] + shape[2:], label_shape == shape[:-1]
    classes_on_dim_1 = on_dim_1 and (not on_last or logits.dim() >= 4)
    logits, labels = _classes_last(logits, classes_on_dim_1), labels.flatten()
    if labels.numel() != logits.shape[0] or int(labels.max()) >= logits.shape[-1] or int(labels.min()) < 0:
        detail = (
            f"labels of shape {label_shape} do not match the first output "
            f"(shape {shape}) as class indices: give one label per sample, or per position with the "
            "classes on the output's last dim or on dim 1 (as segmentation models do)"
        )
        raise TechniqueError(DatasetMismatch, detail)
    loss = F.cross_entropy(logits, labels)
    if weight == 0:
        return loss
    with torch.no_grad():
        targets = _classes_last(_outputs(teacher(*batch))[0], classes_on_dim_1).reshape(logits.shape)
    soft = F.kl_div(
        F.log_softmax(logits / TEMPERATURE, -1),
        F.log_softmax(targets / TEMPERATURE, -1),
        reduction="batchmean",
        log_target=True,
    )
    # T^2 keeps the soft term's gradients on the scale of the hard one's (Hinton et al., 2015).
    return (1 - weight) * loss + weight * TEMPERATURE**2 * soft


def _loss(
    student_out: Any,
    batch: list[torch.Tensor],
    labels: torch.Tensor | None,
    teacher: OnnxModule,
    distillation: float,
) -> Any:
    import torch
    import torch.nn.functional as F

    outputs = _outputs(student_out)
    if labels is not None:
        return _class_loss(outputs[0], labels, batch, teacher, distillation)
    with torch.no_grad():
        targets = _outputs(teacher(*batch))
    pairs = [(s, t) for s, t in zip(outputs, targets, strict=True) if s.dtype.is_floating_point]
    if not pairs:
        raise TechniqueError(DatasetMismatch, "without labels, fine-tuning needs a float output to distil")
    return sum(F.mse_loss(s, t) for s, t in pairs)


def finetune(
    student: OnnxModule,
    teacher: OnnxModule,
    data: Path,
    params: FinetuneParams,
    progress: Progress,
    span: tuple[float, float] = (0.0, 1.0),
    after_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train the student in place (`after_step` runs after each optimizer step); losses go to `progress`."""
    import torch

    inputs, labels = load_dataset(data, student)
    torch.manual_seed(0)
    count, epochs = len(inputs[0]), []
    # A trailing batch of one sample would break batch norm's training statistics.
    usable = count - 1 if count % params.batch_size == 1 and count > 1 else count
    optimizer = torch.optim.Adam(student.parameters(), lr=params.learning_rate)
    steps = params.epochs * max(1, -(-usable // params.batch_size))
    # Cosine decay: large early steps recover quickly, small late ones settle the pruned weights.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    teacher.eval()
    student.train()
    try:
        for epoch in range(1, params.epochs + 1):
            order, total = torch.randperm(count)[:usable], 0.0
            for start in range(0, usable, params.batch_size):
                index = order[start : start + params.batch_size]
                batch = [x[index] for x in inputs]
                optimizer.zero_grad()
                targets = None if labels is None else labels[index]
                loss = _loss(student(*batch), batch, targets, teacher, params.distillation)
                loss.backward()
                optimizer.step()
                if after_step is not None:
                    after_step()
                schedule.step()
                total += float(loss.detach()) * len(index)
            epochs.append({"epoch": epoch, "loss": round(total / usable, 6)})
            fraction = span[0] + (span[1] - span[0]) * epoch / params.epochs
            progress(fraction, f"epoch {epoch}/{params.epochs} loss {total / usable:.4f}")
    finally:
        student.eval()
    objective = "distillation_mse"
    if labels is not None:
        objective = "cross_entropy+distillation" if params.distillation else "cross_entropy"
    return {"objective": objective, "samples": usable, "epochs": epochs}
