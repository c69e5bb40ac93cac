"""prune.structured's stages: prune a share of the channels, recover, and again if iterative.

Each stage prunes towards the final channel counts (fixed on the original model: the requested
fraction of every group), ranks channels by the chosen importance, re-inserts batch norms after
the pruned convolutions (renormalize.py) and fine-tunes with its share of the budget. The held-out
split scores the model right after pruning, and after recovery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.bridge.shrink import Plan, scores
from engine.contract import TechniqueError
from engine.techniques.prune import channel_plan
from engine.techniques.prune.channel_allocation import allocate
from engine.techniques.prune.channel_plan import Scores
from engine.techniques.prune.importance import DATA_DRIVEN, data_scores
from engine.techniques.prune.structured import prune
from engine.techniques.train import renormalize
from engine.techniques.train.data import Samples, load_dataset, split
from engine.techniques.train.finetune import finetune
from engine.techniques.train.validation import score
from service.failures import NothingToPrune

if TYPE_CHECKING:
    from engine.bridge import OnnxModule
    from engine.bridge.channels import ChannelGraph
    from engine.contract import StepContext
    from service.catalog.prune import StructuredPruneParams
    from service.catalog.training import TrainingParams


class Schedule:
    """Final kept channels per group name (fixed on the first analysis) and each stage's counts."""

    def __init__(self, params: StructuredPruneParams, samples: Samples | None) -> None:
        self.params, self.samples = params, samples
        self.sizes: dict[str, int] = {}
        self.final: dict[str, int] = {}
        self.units: dict[str, int] = {}
        self.stage = 1

    def _fix(self, module: OnnxModule, graph: ChannelGraph, names: dict[int, str], ranked: Scores) -> None:
        """The original sizes and final counts, on the first analysis."""
        round_to = self.params.round_to
        self.sizes = {name: graph.spaces.size[root] for root, name in names.items()}
        self.units = {name: channel_plan.unit(graph, root, round_to) for root, name in names.items()}
        self.final = channel_plan.uniform(graph, names, self.params.sparsity, round_to)
        if self.params.allocation == "sensitivity":
            assert self.samples is not None
            self.final = allocate(module, graph, names, ranked, self.final, self.units, self.samples)

    def __call__(self, module: OnnxModule, graph: ChannelGraph) -> Plan:
        """This stage's plan for a (partly pruned) module."""
        names = channel_plan.group_names(module, graph)
        ranking = self.params.ranking
        if ranking in DATA_DRIVEN:
            assert self.samples is not None
            ranked, fallback = data_scores(module, graph, self.samples, ranking), set[int]()
        else:
            ranked, fallback = scores(module, graph, ranking)
        if not self.final:
            self._fix(module, graph, names, ranked)
        stages = self.params.iterations
        counts = channel_plan.stage_counts(self.sizes, self.final, self.stage, stages, self.units)
        plan = channel_plan.from_counts(graph, names, counts, ranked)
        plan.fallback_groups = len(fallback & set(plan.keep))
        return plan


def _budget(params: TrainingParams, stage: int, stages: int, carried: int) -> TrainingParams:
    """The share of the fine-tuning budget of a stage and of the `carried` skipped ones before it."""
    update: dict[str, Any] = {}
    if params.epochs is not None or params.time_budget_s is None:
        epochs, shares = params.epoch_limit, carried + 1
        # Whole epochs: each stage gets its share, the last one the rest.
        share = epochs - (stages - 1) * (epochs // stages) if stage == stages else shares * (epochs // stages)
        update["epochs"] = max(1, share)
    if params.time_budget_s is not None:
        update["time_budget_s"] = params.time_budget_s * (carried + 1) / stages
    return params.model_copy(update=update)


def _held_out(samples: Samples, params: TrainingParams) -> Samples | None:
    """The held-out split fine-tuning will use (the same seeded split)."""
    return split(samples, params.validation_fraction, params.seed)[1]


def prune_and_recover(
    teacher: OnnxModule, params: StructuredPruneParams, ctx: StepContext, warnings: list[str]
) -> tuple[OnnxModule, dict[str, Any]]:
    """The pruned (and fine-tuned) module, and the step's metrics."""
    tuning = params.finetune
    data = ctx.dataset(tuning.dataset_id) if tuning else None
    samples = load_dataset(data, teacher) if data is not None else None
    schedule = Schedule(params, samples)
    module, metrics, stages = teacher, {}, []
    inserted: list[str] = []
    origin: dict[str, np.ndarray] = {}
    original_stats: renormalize.Stats = {}
    carried = 0
    for stage in range(1, params.iterations + 1):
        schedule.stage = stage
        low = 0.05 + 0.85 * (stage - 1) / params.iterations
        high = 0.05 + 0.85 * stage / params.iterations
        try:
            pruned = prune(module, params, warnings, schedule)
        except TechniqueError as error:
            if (
                not isinstance(error.problem, NothingToPrune)
                or stage == params.iterations
                or not schedule.final
            ):
                raise
            # Rounding keeps every group whole at this step: its fine-tuning epochs go to the next.
            carried += 1
            stages.append({"stage": stage, "skipped": "every group keeps its rounded channel count"})
            continue
        module, metrics = pruned.module, pruned.metrics
        for name, rows in pruned.rows.items():
            if rows is not None:
                origin[name] = origin[name][rows] if name in origin else rows
        ctx.progress(low + 0.05 * (high - low), f"pruned {metrics['groups_pruned']} channel groups")
        if tuning is None or samples is None or data is None:
            continue
        held_out = _held_out(samples, tuning)
        record: dict[str, Any] = {"stage": stage}
        if held_out is not None:
            record["after_pruning"] = score(module, teacher, held_out)
        if params.renormalize:
            new = renormalize.candidates(module, pruned.touched)
            wanted = {step.name for step in new} - set(original_stats)
            convs = [step for step in teacher.steps if step.name in wanted]
            original_stats.update(renormalize.conv_stats(teacher, convs, samples))
            names = renormalize.insert(module, new, samples)
            renormalize.realign(module, names, original_stats, origin)
            inserted += names
            renormalize.recalibrate(module, inserted, samples)
            record["renormalized"] = len(names)
        budget = _budget(tuning, stage, params.iterations, carried)
        carried = 0
        record["finetune"] = finetune(
            module, teacher, data, budget, ctx.progress, span=(low + 0.05 * (high - low), high)
        )
        stages.append(record)
    if inserted:
        renormalize.fold(module, inserted)
    if stages:
        metrics["finetune"] = next(stage["finetune"] for stage in reversed(stages) if "finetune" in stage)
        held_out = _held_out(samples, tuning) if samples is not None and tuning is not None else None
        recovery: dict[str, Any] = {"stages": stages}
        if held_out is not None:
            recovery["original"] = score(teacher, teacher, held_out)
            recovery["after_pruning"] = next(s["after_pruning"] for s in stages if "after_pruning" in s)
            recovery["after_recovery"] = score(module, teacher, held_out)
        metrics["recovery"] = recovery
    return module, metrics
