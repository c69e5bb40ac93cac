"""The shared fine-tuning loop for bridged models (objective in finetune_loss.py).

Adam with a warm-up then cosine-decayed learning rate, for a number of epochs or a time budget;
a seeded held-out split scores the model before training and after every epoch, the best epoch's
weights are kept and training stops early once it stops improving (with `patience`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.techniques.train.data import Samples, load_dataset, split
from engine.techniques.train.loss import loss as objective
from engine.techniques.train.schedule import Clock, rate_factor
from engine.techniques.train.validation import rank, score
from service.catalog.training import TrainingParams

if TYPE_CHECKING:
    import torch

    from engine.bridge import OnnxModule

Progress = Callable[[float, str], None]
# A batch's loss for the student: replaces the default objective (distillation brings its own).
Objective = Callable[["OnnxModule", Samples], "torch.Tensor"]


def _usable(count: int, batch_size: int) -> int:
    """Samples per epoch: a trailing batch of one sample would break batch norm's training statistics."""
    return count - 1 if count % batch_size == 1 and count > 1 else count


def _objective_name(samples: Samples, params: TrainingParams) -> str:
    if samples.labels is None:
        return "distillation_mse"
    return "cross_entropy+distillation" if params.distillation else "cross_entropy"


def _batch_loss(
    student: OnnxModule, teacher: OnnxModule, batch: Samples, params: TrainingParams, custom: Objective | None
) -> torch.Tensor:
    """The loss of one batch: the custom objective's, else the default one."""
    if custom is not None:
        return custom(student, batch)
    return objective(
        student(*batch.inputs), batch.inputs, batch.labels, teacher, params.distillation, params.temperature
    )


def _epoch(
    student: OnnxModule,
    teacher: OnnxModule,
    train: Samples,
    params: TrainingParams,
    optimizer: torch.optim.Optimizer,
    clock: Clock,
    after_step: Callable[[], None] | None,
    custom: Objective | None = None,
) -> tuple[float, int, float]:
    """One pass (cut short when the clock runs out): mean loss, samples seen, last learning rate."""
    import torch

    usable = _usable(len(train), params.batch_size)
    order, total, seen, rate = torch.randperm(len(train))[:usable], 0.0, 0, 0.0
    student.train()
    for start in range(0, usable, params.batch_size):
        batch = train.take(order[start : start + params.batch_size])
        rate = params.learning_rate * rate_factor(clock.progress(), params.warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.zero_grad()
        value = _batch_loss(student, teacher, batch, params, custom)
        value.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        clock.tick()
        total, seen = total + float(value.detach()) * len(batch), seen + len(batch)
        if clock.done():
            break
    student.eval()
    return total / max(seen, 1), seen, rate


def lowered_batch(report: dict[str, Any]) -> list[str]:
    """The warning for a run whose batch size was lowered to fit in memory, if it was."""
    if "batch_size_requested" not in report:
        return []
    return [
        f"training used batch_size {report['batch_size']} instead of {report['batch_size_requested']}: a"
        " step at the requested size does not fit in the step's memory limit"
    ]


def fitting_batch_size(
    student: OnnxModule,
    teacher: OnnxModule,
    train: Samples,
    params: TrainingParams,
    custom: Objective | None,
) -> int:
    """The requested batch size, or the largest quarter of it whose training step fits in memory.

    Real models at a default batch of 32 can need more than the sandbox's address space (PP-OCRv4's
    recognizer with its teacher); one probe step per size finds out before any weight moves.
    """
    import torch

    from engine.errortext import out_of_memory
    from engine.techniques.train.allocator import freed_memory_unmapped

    size = min(params.batch_size, len(train))
    with freed_memory_unmapped():  # a failed probe must leave room for the next, smaller one
        while True:
            try:
                batch = train.take(torch.arange(size))
                # In eval mode: batch norm's running statistics must not move before training starts.
                student.eval()
                _batch_loss(student, teacher, batch, params, custom).backward()
                break
            except (MemoryError, RuntimeError) as error:
                if not out_of_memory(error) or size == 1:
                    raise
            size = max(1, size // 4)
    student.zero_grad(set_to_none=True)
    # The probe held no optimizer state: halve once more after a shrink, for Adam's two moments.
    return params.batch_size if size >= params.batch_size or size == len(train) else max(1, size // 2)


def finetune(
    student: OnnxModule,
    teacher: OnnxModule,
    data: Path,
    params: TrainingParams,
    progress: Progress,
    span: tuple[float, float] = (0.0, 1.0),
    after_step: Callable[[], None] | None = None,
    custom: tuple[str, Objective, Iterable[torch.nn.Parameter]] | None = None,
) -> dict[str, Any]:
    """Train the student in place (`after_step` runs after each optimizer step); figures go to `progress`.

    `custom` replaces the default objective: its name, the batch loss, and extra parameters it
    trains along with the student (adapters).
    """
    from engine.techniques.train.device import on_device, training_device

    device = training_device()
    extra = list(custom[2]) if custom is not None else []
    with on_device(device, [student, teacher], extra):
        report = _finetune(student, teacher, data, params, progress, span, after_step, custom, extra, device)
    return report


def _finetune(
    student: OnnxModule,
    teacher: OnnxModule,
    data: Path,
    params: TrainingParams,
    progress: Progress,
    span: tuple[float, float],
    after_step: Callable[[], None] | None,
    custom: tuple[str, Objective, Iterable[torch.nn.Parameter]] | None,
    extra: list[torch.nn.Parameter],
    device: torch.device,
) -> dict[str, Any]:
    """finetune's loop, with the models and `extra` already on `device`."""
    import torch

    started = time.monotonic()
    samples = load_dataset(data, student).to(device)
    train, held_out = split(samples, params.validation_fraction, params.seed)
    trained_on = custom[1] if custom is not None else None
    fitted = fitting_batch_size(student, teacher, train, params, trained_on)
    requested = params.batch_size
    if fitted != requested:
        params = params.model_copy(update={"batch_size": fitted})
    torch.manual_seed(params.seed)
    limit = params.epoch_limit
    per_epoch = -(-_usable(len(train), params.batch_size) // params.batch_size)
    clock = Clock(limit * per_epoch, params.time_budget_s)
    optimizer = torch.optim.Adam([*student.parameters(), *extra], lr=params.learning_rate)
    teacher.eval()
    student.eval()
    report: dict[str, Any] = {
        "objective": custom[0] if custom is not None else _objective_name(train, params),
        "device": device.type,
        "samples": len(train),
        "batch_size": params.batch_size,
        "epochs": [],
    }
    if fitted != requested:
        report["batch_size_requested"] = requested
    # A custom objective is also the held-out yardstick: the best epoch is the one it rates best.
    best: tuple[tuple[float, ...], int, dict[str, Any]] | None = None
    if held_out is not None:
        report["held_out"] = len(held_out)
        report["before"] = score(student, teacher, held_out, trained_on)
        best = (rank(report["before"]), 0, copy.deepcopy(student.state_dict()))
    report["stopped"], stale = "epochs", 0
    for epoch in range(1, limit + 1):
        mean, seen, rate = _epoch(student, teacher, train, params, optimizer, clock, after_step, trained_on)
        record: dict[str, Any] = {"epoch": epoch, "loss": round(mean, 6), "learning_rate": rate}
        message = f"epoch {epoch}/{limit} loss {mean:.4f}"
        if seen < _usable(len(train), params.batch_size):
            record["samples"] = seen  # the time budget ended this epoch early
        if held_out is not None and best is not None:
            record["validation"] = figures = score(student, teacher, held_out, trained_on)
            message += "".join(f" {name} {value:.4f}" for name, value in figures.items())
            stale += 1
            if rank(figures) > best[0]:
                best, stale = (rank(figures), epoch, copy.deepcopy(student.state_dict())), 0
        report["epochs"].append(record)
        progress(span[0] + (span[1] - span[0]) * clock.progress(), message)
        if clock.done() and epoch < limit:
            report["stopped"] = "time_budget"
            break
        if params.patience is not None and stale >= params.patience:
            report["stopped"] = "early_stopping"
            break
    if best is not None:
        report["best_epoch"] = best[1]
        if best[1] != report["epochs"][-1]["epoch"]:
            student.load_state_dict(best[2])
    report["seconds"] = round(time.monotonic() - started, 3)
    return report
