"""The recovery bench's hand recipe: Torch-Pruning told to keep exactly the channel counts ModelPress keeps.

Torch-Pruning's `round_to` floors each layer's kept count to a multiple (30% of 64 channels keeps
40), ModelPress rounds it up (48): left to their own rounding the two sides prune different networks
and the comparison measures the rounding. So both sides keep the counts of one rule, ModelPress's
(`channel_plan.round_up`), given to Torch-Pruning per layer, and the pruned widths are checked.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from engine.techniques.prune.channel_plan import round_up


def kept_counts(model: nn.Module, sparsity: float, round_to: int) -> dict[nn.Conv2d, int]:
    """Channels each convolution keeps: its share of channels rounded up to a multiple, as ModelPress does."""
    return {
        conv: round_up(conv.out_channels * (1 - sparsity), round_to, conv.out_channels)
        for conv in model.modules()
        if isinstance(conv, nn.Conv2d)
    }


def widths(model: nn.Module) -> list[int]:
    """Output channels of every convolution, in order."""
    return [conv.out_channels for conv in model.modules() if isinstance(conv, nn.Conv2d)]


def torch_pruning(model: nn.Module, example: torch.Tensor, sparsity: float, round_to: int) -> nn.Module:
    """Torch-Pruning's MetaPruner with L1 magnitude importance, keeping ModelPress's per-layer counts."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    counts = kept_counts(pruned, sparsity, round_to)
    pruner = tp.pruner.MetaPruner(
        pruned,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        # Torch-Pruning keeps int(size * (1 - ratio)) channels: this ratio keeps exactly `kept`.
        pruning_ratio_dict={
            conv: (conv.out_channels - kept) / conv.out_channels for conv, kept in counts.items()
        },
        ignored_layers=[pruned.head],
        round_to=None,  # the counts are already rounded; Torch-Pruning's own rounding would floor them
    )
    pruner.step()
    wanted = list(counts.values())
    if widths(pruned) != wanted:
        raise RuntimeError(f"Torch-Pruning kept {widths(pruned)} channels, not the plan's {wanted}")
    return pruned
