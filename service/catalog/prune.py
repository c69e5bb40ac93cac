"""Pruning techniques: parameters and where their implementations live."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from service.catalog.base import NodeNames, Queue, TechniqueParams, TechniqueSpec
from service.catalog.training import TrainingParams

PrunableOp = Literal["Conv", "Gemm", "MatMul"]


def _all_prunable_ops() -> list[PrunableOp]:
    return ["Conv", "Gemm", "MatMul"]


# The shared training parameters (service/catalog/training.py), under the name pruning always used.
FinetuneParams = TrainingParams


class _FinetuneLabels(TechniqueParams):
    """Fine-tuning trains on the dataset's labels as classes (cross-entropy)."""

    finetune: FinetuneParams | None = None

    def labelled_datasets(self) -> list[tuple[str, str | None]]:
        """The fine-tuning dataset, whose labels are classes."""
        return [(self.finetune.dataset_id, "top1")] if self.finetune is not None else []


class MagnitudePruneParams(_FinetuneLabels):
    """Unstructured L1 magnitude pruning of Conv / Gemm / MatMul weights."""

    sparsity: float = Field(0.5, gt=0.0, lt=1.0, description="Fraction of weights set to zero")
    scope: Literal["per_layer", "global"] = Field(
        "per_layer", description="Same sparsity in every layer, or one threshold across all of them"
    )
    op_types: list[PrunableOp] = Field(
        default_factory=_all_prunable_ops, min_length=1, max_length=3, description="Op types to prune"
    )
    nodes_to_include: NodeNames | None = Field(None, description="Only prune these node names (default: all)")
    nodes_to_exclude: NodeNames = Field(default_factory=list, description="Node names left dense")
    finetune: FinetuneParams | None = Field(
        None, description="Train after pruning to recover accuracy; pruned weights stay zero"
    )


class NMPruneParams(_FinetuneLabels):
    """N:M semi-structured sparsity along each layer's reduction dimension."""

    n: int = Field(2, ge=1, le=15, description="Non-zero weights kept in each group")
    m: int = Field(4, ge=2, le=16, description="Consecutive weights per group along the reduction dimension")
    op_types: list[PrunableOp] = Field(
        default_factory=_all_prunable_ops, min_length=1, max_length=3, description="Op types to prune"
    )
    nodes_to_include: NodeNames | None = Field(None, description="Only prune these node names (default: all)")
    nodes_to_exclude: NodeNames = Field(default_factory=list, description="Node names left dense")
    finetune: FinetuneParams | None = Field(
        None, description="Train after pruning to recover accuracy; pruned weights stay zero"
    )

    @model_validator(mode="after")
    def _n_below_m(self) -> Self:
        if self.n >= self.m:
            raise ValueError("n must be smaller than m")
        return self


class StructuredPruneParams(_FinetuneLabels):
    """Removal of whole channels / neurons, following the graph's channel dependencies."""

    sparsity: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Fraction of channels (attention heads, in an encoder's attention) removed in each "
        "prunable group",
    )
    importance: Literal["auto", "l1", "l2", "bn_scale", "taylor", "activation"] = Field(
        "auto",
        description="Channel ranking: weight norm, batch-norm scale where there is one, or from the "
        "fine-tuning dataset: first-order Taylor estimate of the loss change, or mean absolute activation; "
        "`auto` is `taylor` with a fine-tuning dataset and uniform allocation, else `l1`",
    )
    round_to: int = Field(
        8,
        ge=1,
        le=1024,
        description="Kept channel counts are rounded up to a multiple of this (for heads: their channels)",
    )
    allocation: Literal["uniform", "sensitivity"] = Field(
        "uniform",
        description="Channels removed per group: the same fraction everywhere, or more where the loss on "
        "the fine-tuning dataset rises least, keeping no more weights than uniform pruning",
    )
    exclude: NodeNames = Field(default_factory=list, description="Node names whose output channels are kept")
    finetune: FinetuneParams | None = Field(None, description="Train after pruning to recover accuracy")
    iterations: int = Field(
        1,
        ge=1,
        le=10,
        description="Prune in this many equal steps, fine-tuning after each (the fine-tuning budget is "
        "shared among them)",
    )
    renormalize: bool = Field(
        True,
        description="While fine-tuning, put a batch norm back after each pruned convolution that has none "
        "(an exported model's are folded in), set to the original model's statistics; folded back at export",
    )

    @property
    def ranking(self) -> str:
        """The importance in force: `auto` resolved to one that can be computed."""
        if self.importance != "auto":
            return self.importance
        # Weight norms are skewed once batch norms are folded in; the data says what each channel does.
        # Not under sensitivity allocation: its loss curves, ranked by Taylor, starve the widest layers
        # (bench/RECOVERY.md: 14.5 points lost at 50% where l1 ranking loses 1.4).
        uniform = self.allocation == "uniform"
        return "taylor" if self.finetune is not None and uniform else "l1"

    @model_validator(mode="after")
    def _data_needs_a_dataset(self) -> Self:
        reads_data = self.ranking in ("taylor", "activation") or self.allocation == "sensitivity"
        if self.finetune is None and (reads_data or self.iterations > 1):
            raise ValueError(
                "importance 'taylor' or 'activation' and allocation 'sensitivity' (read from the data) and "
                "iterations above 1 (which fine-tune between steps) need `finetune` and its dataset"
            )
        tuning = self.finetune
        if tuning is not None and tuning.time_budget_s is None and self.iterations > tuning.epoch_limit:
            raise ValueError("iterations above the fine-tuning epochs: each step needs at least one epoch")
        return self


PRUNE_TECHNIQUES = (
    TechniqueSpec(
        name="prune.magnitude",
        summary="unstructured L1 magnitude pruning, per layer or global",
        queue=Queue.CPU,
        params=MagnitudePruneParams,
        implementation="engine.techniques.prune.magnitude",
    ),
    TechniqueSpec(
        name="prune.nm",
        summary="N:M semi-structured sparsity (2:4 for sparse tensor cores)",
        queue=Queue.CPU,
        params=NMPruneParams,
        implementation="engine.techniques.prune.nm",
    ),
    TechniqueSpec(
        name="prune.structured",
        summary="removes whole channels, neurons or attention heads (physically smaller tensors), channel "
        "counts rounded to hardware-friendly multiples, optional fine-tuning",
        queue=Queue.CPU,
        params=StructuredPruneParams,
        implementation="engine.techniques.prune.structured",
        trains=True,
    ),
)
