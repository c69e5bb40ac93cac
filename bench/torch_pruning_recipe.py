"""The hand recipe: Torch-Pruning called directly on the trained torch model, fine-tuned, exported.

This is what a user writes without ModelPress: L1 channel importance, the same fraction of channels
per layer, the same rounding and the same fine-tuning budget (epochs, learning rate, batch size,
Adam with cosine decay, as ModelPress's fine-tuning uses), then torch.onnx.export.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.pruning_setup import PruningReference, export, one_thread


@dataclass(frozen=True)
class Budget:
    """Fine-tuning budget shared by every recipe that trains."""

    epochs: int
    learning_rate: float
    batch_size: int
    seed: int = 0


def finetune(model: nn.Module, train_npz: Path, budget: Budget) -> list[float]:
    """Cross-entropy with Adam and cosine decay, seeded by the budget; returns each epoch's mean loss."""
    with np.load(train_npz) as arrays:
        x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["labels"])
    torch.manual_seed(budget.seed)
    count = len(x)
    usable = count - 1 if count % budget.batch_size == 1 else count  # batch norm needs 2+ samples
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=budget.epochs * -(-usable // budget.batch_size)
    )
    losses = []
    model.train()
    for _ in range(budget.epochs):
        order, total = torch.randperm(count)[:usable], 0.0
        for start in range(0, usable, budget.batch_size):
            index = order[start : start + budget.batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        losses.append(total / usable)
    model.eval()
    return losses


def torch_pruning(
    reference: PruningReference, output: Path, sparsity: float, round_to: int, budget: Budget
) -> list[str]:
    """Prune a copy of the reference's torch model with Torch-Pruning, fine-tune it, export to ONNX."""
    import torch_pruning as tp

    model = copy.deepcopy(reference.model).eval()
    head = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(
        model,
        reference.example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=sparsity,
        ignored_layers=[head],  # the 10 class logits must stay
        round_to=round_to,
    )
    pruner.step()
    threads = one_thread()
    try:
        losses = finetune(model, reference.train_npz, budget)
    finally:
        torch.set_num_threads(threads)
    export(model, reference.example, output)
    return [f"fine-tuning loss per epoch: {', '.join(f'{loss:.4f}' for loss in losses)}"]
